# shellcheck shell=bash disable=SC2034 # IMAGE_* are read by ops/images/build
# Recipe of the `tiny` image, sourced by ops/images/build: busybox (init, shell, httpd on
# port 80, nc, udhcpc), dropbear as sshd on port 22, OpenSSH's sftp-server and scp, and
# resize2fs; the binaries and their libraries come from Debian packages, extracted.
# Boot: busybox init runs guest/tiny/etc/exed/rcS, then dropbear and httpd (see inittab).

IMAGE_USER=user
IMAGE_WEB_PORT=80
IMAGE_FREE_MB=96

TINY_PACKAGES=(
  busybox-static dropbear-bin openssh-sftp-server openssh-client e2fsprogs
  libc6 libcrypt1 zlib1g libtomcrypt1 libtommath1 libgmp10 libext2fs2 libcom-err2
)
# Dynamic executables taken from those packages (their libraries follow).
TINY_BINARIES=(
  usr/sbin/dropbear usr/bin/dropbearkey
  usr/lib/openssh/sftp-server usr/bin/scp
  sbin/resize2fs
)

# copy_elf PKGROOT ROOT FILE: copy FILE and the shared libraries it needs (resolved by the
# packages' own dynamic loader, inside PKGROOT only) from PKGROOT to ROOT.
copy_elf() {
  local pkg=$1 root=$2 file=$3 lib
  local ldso=$pkg/lib64/ld-linux-x86-64.so.2
  mkdir -p "$root/$(dirname "$file")" "$root/lib64"
  cp -L "$pkg/$file" "$root/$file"
  [[ -e $root/lib64/ld-linux-x86-64.so.2 ]] || cp -L "$ldso" "$root/lib64/"
  "$ldso" --inhibit-cache --library-path "$pkg/lib/x86_64-linux-gnu:$pkg/usr/lib/x86_64-linux-gnu" \
    --list "$pkg/$file" >"$WORK/ldd.out" || die "cannot list the libraries of $file"
  ! grep 'not found' "$WORK/ldd.out" || die "$file: libraries missing: add their packages to TINY_PACKAGES"
  # shellcheck disable=SC2013 # paths without spaces
  for lib in $(sed -n 's/^.* => \(\/[^ ]*\) (0x.*$/\1/p' "$WORK/ldd.out"); do
    [[ $lib == "$pkg"/* ]] || die "$file needs $lib, which is not in TINY_PACKAGES"
    lib=${lib#"$pkg"/}
    [[ -e $root/$lib ]] && continue
    mkdir -p "$root/$(dirname "$lib")"
    cp -L "$pkg/$lib" "$root/$lib"
  done
}

build_rootfs() {
  local root=$1 pkg=$WORK/tiny-packages applet file
  log "tiny: extracting ${#TINY_PACKAGES[@]} packages"
  extract_debs "$pkg" "${TINY_PACKAGES[@]}"

  mkdir -p "$root"/{bin,sbin,lib,usr/bin,usr/sbin,usr/lib,dev,proc,sys,run,tmp,root,home,mnt} \
    "$root"/etc/{profile.d,dropbear,exed} "$root"/var/{lib/exed,log,www}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  ln -s /run "$root/var/run"

  cp "$pkg/bin/busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list-full); do
    [[ -e $root/$applet ]] || { mkdir -p "$root/$(dirname "$applet")" && ln -s /bin/busybox "$root/$applet"; }
  done
  for file in "${TINY_BINARIES[@]}"; do copy_elf "$pkg" "$root" "$file"; done
  ln -s openssh/sftp-server "$root/usr/lib/sftp-server" # where dropbear looks for it

  cp -a "$GUEST_DIR/tiny/." "$root/"
  install -m 0755 "$GUEST_DIR/exed-guest" "$root/usr/sbin/exed-guest"

  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/sbin/nologin
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
  # '*': no password at all (key login only); an empty one would let anyone in (and
  # dropbear refuses empty ones anyway).
  cat >"$root/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
www-data:*:19000:0:99999:7:::
user:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
  chmod 0600 "$root/etc/shadow"
  cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
www-data:x:33:
user:x:1000:
nogroup:x:65534:
EOF
  printf '/bin/sh\n/bin/ash\n' >"$root/etc/shells"
  echo tiny >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost\n' >"$root/etc/hosts"
  echo "$IMAGE_USER" >"$root/etc/exed/user"
  install -d -m 0755 -o 1000 -g 1000 "$root/home/user"
  chown -R 1000:1000 "$root/var/www"
}
