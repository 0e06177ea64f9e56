# shellcheck shell=bash disable=SC2034,SC2016 # IMAGE_* are read by build; hooks expand "$1" later
# Recipe of the `debian` image, sourced by ops/images/build: Debian 12 minbase from
# mmdebstrap, with systemd, OpenSSH, sudo, ifupdown + udhcpc (DHCP on eth0), a few
# everyday tools, and the exed guest units (guest/debian/, installed by
# guest/debian/customize). Boot under TCG is CPU-bound (a unit or program start costs
# 0.05-0.5 s), hence ifupdown with busybox's udhcpc rather than systemd-networkd (which
# needs systemd-resolved for DNS, ~2 s of CPU) or isc-dhcp-client (a bash hook script).
# No kernel package: the shared kernel and initramfs boot it; the kernel's modules are
# copied in so that more of them load later (modprobe).

IMAGE_USER=user
IMAGE_WEB_PORT=80
IMAGE_FREE_MB=256
# eth0 whatever the bus (virtio-mmio on microvm, virtio-pci on q35): /etc/network/interfaces
IMAGE_CMDLINE="net.ifnames=0"

DEBIAN_PACKAGES=(
  systemd-sysv udev dbus ifupdown udhcpc busybox-static
  openssh-server openssh-sftp-server sudo
  curl ca-certificates git iproute2 iputils-ping netbase
  less procps e2fsprogs kmod vim-tiny bash-completion
)

build_rootfs() {
  local root=$1 debcache=$CACHE/debian-$SUITE
  local -a hooks
  command -v mmdebstrap >/dev/null || die "mmdebstrap not found (run ops/setup)"
  mkdir -p "$debcache"
  # Hooks run on this host (root mode) with "$1" = the chroot; /proc etc. mounted there.
  hooks=(
    # reuse and refill the .deb cache (the essential packages' too)
    --skip=essential/unlink
    --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && cp -a $(printf %q "$debcache")/. \"\$1/var/cache/apt/archives/\""
    --customize-hook='chroot "$1" apt-get autoclean -qq'
    --customize-hook="mkdir -p $(printf %q "$WORK/debs") && cp -a \"\$1\"/var/cache/apt/archives/*.deb $(printf %q "$WORK/debs")/"
    # the exed guest side
    --customize-hook="mkdir -p \"\$1/tmp/exed\" && cp -a $(printf %q "$GUEST_DIR")/exed-guest $(printf %q "$GUEST_DIR")/debian/. \"\$1/tmp/exed/\""
    --customize-hook="chroot \"\$1\" sh /tmp/exed/customize $IMAGE_USER"
    --customize-hook='rm -rf "$1/tmp/exed"'
  )
  log "debian: mmdebstrap $SUITE (${#DEBIAN_PACKAGES[@]} packages and their dependencies)"
  mmdebstrap --quiet --variant=minbase --mode=root --format=directory \
    --include="$(IFS=,; echo "${DEBIAN_PACKAGES[*]}")" \
    --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "${hooks[@]}" \
    "$SUITE" "$root" \
    "deb $MIRROR/debian $SUITE main" \
    "deb $MIRROR/debian $SUITE-updates main" \
    "deb $MIRROR/debian-security $SUITE-security main" >&2 ||
    die "mmdebstrap failed"

  # The new cache replaces the old (apt-get autoclean dropped superseded versions).
  rm -rf "$debcache.new" && cp -a "$WORK/debs" "$debcache.new" &&
    rm -rf "$debcache" && mv "$debcache.new" "$debcache"

  [[ -z $(find "$root/etc/ssh" -name 'ssh_host_*') ]] || die "SSH host keys left in the image"
  mkdir -p "$root/lib/modules"
  cp -a "$KERNEL_DIR/lib/modules/$KVER" "$root/lib/modules/"
}
