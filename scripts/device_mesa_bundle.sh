#!/usr/bin/env bash
# Pack this machine's renderer (Mesa's EGL and its llvmpipe software driver, with every library they load that
# is not glibc) for the lent GPU machine, so that demonstrations and validation there draw the same pixels as
# here. With NVIDIA's EGL the lent machine's frames differ from this machine's by about 2 grey levels on
# average; a policy trained on them is evaluated on Mesa's frames (the suite runs here).
#
# Writes three git-ignored folders, each small enough for one device call beside the checkout (64 MiB in all):
#   .devmesa0/mesa.part00   first 40 MB of the archive
#   .devmesa1/mesa.part01   the rest
#   .devmesa2/mesa.sh       sourced after the last .devsimK/dev.sh: unpacks /tmp/mesa once, points glvnd at Mesa
# Device calls (each within 30 s of the last; a part goes alone beside the checkout): carry .devmesa0:
# `mkdir -p /tmp/stash && cp .devmesa0/* /tmp/stash/`; carry .devmesa1: `cp .devmesa1/* /tmp/stash/`; then the
# calls of scripts/device_sim_bundle.py, one per .devsimK, the last also carrying .gl, .devdata and .devmesa2:
# `source .devsimN/dev.sh; source .devmesa2/mesa.sh; ...`
# Check it there first: `python3 scripts/render_probe.py compare FILE` against a file this machine saved with
# `python scripts/render_probe.py save FILE` (0.000 grey levels apart means the same renderer).
set -euo pipefail
cd "$(dirname "$0")/.."
lib=/lib/x86_64-linux-gnu dri=/usr/lib/x86_64-linux-gnu/dri
work=$(mktemp -d)
mkdir -p "$work/lib" "$work/dri" "$work/egl"
# Everything Mesa's EGL, GBM and the software driver load, except glibc's own libraries, which the device has.
for path in $( (ldd "$lib/libEGL_mesa.so.0"; ldd "$dri/swrast_dri.so"; ldd "$lib/libgbm.so.1") | awk '/=>/ {print $3}' \
               | sort -u | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libgcc_s)\.so'); do
  cp -L "$path" "$work/lib/"
done
cp -L "$lib/libEGL_mesa.so.0" "$lib/libgbm.so.1" "$work/lib/"
cp -L "$dri/swrast_dri.so" "$work/dri/"
echo '{"file_format_version": "1.0.0", "ICD": {"library_path": "/tmp/mesa/lib/libEGL_mesa.so.0"}}' > "$work/egl/50_mesa.json"
tar cf - -C "$work" lib dri egl | xz -T2 -6 > "$work/mesa.tar.xz"
mkdir -p .devmesa0 .devmesa1 .devmesa2
rm -f .devmesa0/mesa.part* .devmesa1/mesa.part*
split -b 40000000 -d "$work/mesa.tar.xz" "$work/mesa.part"
mv "$work/mesa.part00" .devmesa0/ && mv "$work/mesa.part01" .devmesa1/
cat > .devmesa2/mesa.sh <<'EOF'
# Sourced after the last .devsimK/dev.sh on the lent machine (scripts/device_mesa_bundle.sh): render through Mesa's llvmpipe,
# one thread per process, instead of NVIDIA's EGL.
if [ ! -f /tmp/mesa/.ready ] && [ -f /tmp/stash/mesa.part00 ] && [ -f /tmp/stash/mesa.part01 ]; then
  mkdir -p /tmp/mesa && cat /tmp/stash/mesa.part00 /tmp/stash/mesa.part01 | xz -dc | tar xf - -C /tmp/mesa && touch /tmp/mesa/.ready
fi
[ -f /tmp/mesa/.ready ] || echo "mesa.sh: the Mesa bundle is not on this machine; stash both parts first" >&2
export __EGL_VENDOR_LIBRARY_FILENAMES=/tmp/mesa/egl/50_mesa.json LIBGL_DRIVERS_PATH=/tmp/mesa/dri \
  LD_LIBRARY_PATH=/tmp/mesa/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} LP_NUM_THREADS=1 MUJOCO_EGL_DEVICE_ID=0
EOF
rm -rf "$work"
du -sh .devmesa0 .devmesa1 .devmesa2
