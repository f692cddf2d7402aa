#!/usr/bin/env bash
# Installs every Debian package rcptwall needs to build, run and test.
# Idempotent: quiet and quick when everything is already there.
set -euo pipefail

PACKAGES=(
  # build
  make gcc clang llvm pkg-config bpftool
  libbpf-dev libelf-dev zlib1g-dev
  libnftables-dev libpsl-dev publicsuffix libidn2-dev libicu-dev
  libinih-dev libjansson-dev libcmocka-dev libclang-rt-14-dev
  # run
  iproute2 nftables
  # tests and benchmarks
  swaks libio-socket-inet6-perl python3 python3-aiosmtpd iperf3 dnstwist postfix
  gnutls-bin openssl qemu-system-x86 busybox-static cpio kmod
  # TLS uprobe test (links both libraries) and swaks --tls
  libssl-dev libgnutls28-dev libnet-ssleay-perl
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (try: sudo $0)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix asks debconf questions; answer them so the install never blocks.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A packaged Postfix must not run as the host's MTA because of us: tests
# start their own instance with their own config.
if [[ " ${missing[*]} " == *" postfix "* ]] && command -v systemctl >/dev/null; then
  systemctl disable --now postfix >/dev/null 2>&1 || true
fi
