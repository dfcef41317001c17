# Sourced on the lent GPU machine (see scripts/device_sim_bundle.py): LIBERO, MuJoCo and transformers 4.40.1
# under /tmp/site, rendering through NVIDIA's EGL. Idempotent. Each call stashes the parts it carries (.devsimK/);
# the call that completes the set of @PARTS@ unpacks them.
mkdir -p /tmp/stash
for part in .devsim[0-9]*/devpart.*; do [ -f "$part" ] && [ ! -f "/tmp/stash/${part##*/}" ] && cp "$part" /tmp/stash/; done
if [ ! -f /tmp/site/.ready ] && [ "$(ls /tmp/stash/devpart.* 2>/dev/null | wc -l)" -eq @PARTS@ ]; then
  for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done; ldconfig
  cat /tmp/stash/devpart.* > /tmp/bundle.tar && mkdir -p /tmp/b && tar xf /tmp/bundle.tar -C /tmp/b \
  && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/b/*.whl \
  && tar xJf /tmp/b/devsim_site.tar.xz -C /tmp && cp -r /tmp/devsim_site/* /tmp/site/ && touch /tmp/site/.ready
fi
if [ ! -f /tmp/site/.ready ]; then
  echo "device_sim_setup: $(ls /tmp/stash/devpart.* 2>/dev/null | wc -l) of @PARTS@ parts here; LIBERO is unpacked" \
       "once every .devsimK folder has been carried in a call on this machine (scripts/device_sim_bundle.py)" >&2
fi
export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYOPENGL_PLATFORM=egl PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore \
  __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
