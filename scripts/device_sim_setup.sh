# Sourced on the lent GPU machine (see scripts/device_sim_bundle.py): LIBERO, MuJoCo and transformers 4.40.1
# under /tmp/site, rendering through NVIDIA's EGL. Idempotent; the first call that has both parts unpacks.
if [ ! -f /tmp/site/.ready ] && [ -f /tmp/stash/devpart.aa ] && [ -f .devsim2/devpart.ab ]; then
  for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done; ldconfig
  cat /tmp/stash/devpart.aa .devsim2/devpart.ab > /tmp/bundle.tar && mkdir -p /tmp/b && tar xf /tmp/bundle.tar -C /tmp/b \
  && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/b/*.whl \
  && tar xJf /tmp/b/devsim_site.tar.xz -C /tmp && cp -r /tmp/devsim_site/* /tmp/site/ && touch /tmp/site/.ready
fi
if [ ! -f /tmp/site/.ready ]; then
  echo "device_sim_setup: LIBERO is not unpacked on this machine (a fresh one, or a part missing): run call 1" \
       "(carry .devsim1) and call 2 (carry .devsim2 and .gl) of scripts/device_sim_bundle.py again" >&2
elif [ ! -d /tmp/site/simplejpeg ] && ls .devsim3/simplejpeg-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devsim3/simplejpeg-*.whl
fi
export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYOPENGL_PLATFORM=egl PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore \
  __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
