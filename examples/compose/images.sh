#!/usr/bin/env bash
# Builds the demo's images on this machine, with nothing pulled: salve from the
# repository's Dockerfile (after `cargo build --release`), and Prometheus, Alertmanager
# and the demo service from Debian's binaries (prometheus, prometheus-alertmanager,
# busybox-static), each imported from a tarball of the binary and what it loads.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for need in /usr/bin/prometheus /usr/bin/prometheus-alertmanager /bin/busybox; do
  [ -x "$need" ] || { echo "images.sh: $need is missing (apt-get install prometheus prometheus-alertmanager busybox-static)" >&2; exit 1; }
done

# A root holding BINARY as /bin/NAME and the libraries ldd names for it.
rootfs() { # dir binary name
  local dir=$1 binary=$2 name=$3
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp"
  cp "$binary" "$dir/bin/$name"
  ldd "$binary" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  printf 'root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/etc/passwd"
  chmod 1777 "$dir/tmp"
}

rootfs "$work/prometheus" /usr/bin/prometheus prometheus
mkdir -p "$work/prometheus/prometheus"
tar -C "$work/prometheus" -c . | docker import \
  --change 'ENTRYPOINT ["/bin/prometheus"]' - salve-demo-prometheus:latest >/dev/null

rootfs "$work/alertmanager" /usr/bin/prometheus-alertmanager alertmanager
mkdir -p "$work/alertmanager/alertmanager"
# Its notification templates, which it loads even when no receiver uses them.
mkdir -p "$work/alertmanager/usr/share/prometheus"
cp -r /usr/share/prometheus/alertmanager "$work/alertmanager/usr/share/prometheus/"
tar -C "$work/alertmanager" -c . | docker import \
  --change 'ENTRYPOINT ["/bin/alertmanager"]' - salve-demo-alertmanager:latest >/dev/null

# The demo service: busybox's httpd serving /cgi-bin/metrics, which says
# demo_healthy 0 while /www/broken exists; a start clears it.
demo=$work/demo
mkdir -p "$demo/bin" "$demo/www/cgi-bin" "$demo/tmp"
cp /bin/busybox "$demo/bin/busybox"
for applet in sh httpd cat rm touch; do ln -s busybox "$demo/bin/$applet"; done
cat > "$demo/www/cgi-bin/metrics" <<'CGI'
#!/bin/sh
echo "Content-Type: text/plain; version=0.0.4"
echo ""
if [ -e /www/broken ]; then healthy=0; else healthy=1; fi
echo "# TYPE demo_healthy gauge"
echo "demo_healthy{container=\"$(cat /www/name)\"} $healthy"
CGI
chmod 755 "$demo/www/cgi-bin/metrics"
tar -C "$demo" -c . | docker import \
  --change 'CMD ["/bin/sh", "-c", "rm -f /www/broken; echo \"$DEMO_NAME\" > /www/name; exec httpd -f -p 8080 -h /www"]' \
  - salve-demo-service:latest >/dev/null

# BUILD_SALVE=0: salve's image is there already (the tests build theirs).
if [ "${BUILD_SALVE:-1}" != 0 ]; then
  if [ ! -x "$root/target/release/salve" ]; then
    (cd "$root" && cargo build --release --bin salve)
  fi
  (cd "$root" && docker build -q -t "${SALVE_IMAGE:-salve:latest}" . >/dev/null)
fi

echo "built ${SALVE_IMAGE:-salve:latest}, salve-demo-prometheus, salve-demo-alertmanager, salve-demo-service"
echo "the Docker socket's group: DOCKER_GID=$(stat -c %g /var/run/docker.sock)"
