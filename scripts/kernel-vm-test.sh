#!/usr/bin/env bash
# kernel-vm-test.sh: test the kernel backend's kprobes (and uprobes, and
# its feature detection) on a real kprobe kernel, booted in a throwaway
# qemu VM: Debian's cloud kernel (6.1 on bookworm, CONFIG_KPROBE_EVENTS=y),
# an initramfs with a static Go /init (scripts/vminit), the kernel
# package's tests built static (CGO_ENABLED=0 go test -c) and a static C
# uprobe target (testdata/c/probes.c). The tests that run there are
# kernel/vm_test.go's (TestVM*), which skip everywhere else.
#
#   bash scripts/kernel-vm-test.sh
#
# Exit status: the test binary's inside the VM (0: passed), 77 when the VM
# cannot run here (no qemu and no way to install it, the kernel cannot be
# downloaded, qemu cannot boot it; the reason is printed), other non-zero
# statuses for failures. The serial console log is out/kernel-vm-test.log.
#
# It installs what is missing with apt-get (qemu-system-x86, gcc) and
# caches the kernel package in .cache/kernel-vm/ (git-ignored): the
# package is found through the dependencies of the meta package
# linux-image-cloud-amd64, never by a version written here, and only its
# vmlinuz is unpacked (nothing is installed into /boot).
#
# Environment: PTPROBE_VM_META (meta package, default
# linux-image-cloud-amd64), PTPROBE_VM_RUN (-test.run of the tests,
# default ^TestVM), PTPROBE_VM_TIMEOUT (hard limit of qemu in seconds,
# default 150), PTPROBE_VM_ACCEL (kvm or tcg; default kvm only when the
# CPU flags show vmx or svm and /dev/kvm is usable).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

readonly SKIP=77
meta=${PTPROBE_VM_META:-linux-image-cloud-amd64}
run_re=${PTPROBE_VM_RUN:-^TestVM}
limit=${PTPROBE_VM_TIMEOUT:-150}
cache=$root/.cache/kernel-vm
outdir=$root/out
log=$outdir/kernel-vm-test.log
mkdir -p "$cache" "$outdir"
: >"$log"

t0=$EPOCHREALTIME
say() { echo "kernel-vm-test: [$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%5.1fs", a - b }')] $*"; }
# skip: the VM cannot run here. Says why, on the output and in the log.
skip() {
  echo "kernel-vm-test: SKIPPED: $*" | tee -a "$log"
  exit "$SKIP"
}
fail() {
  echo "kernel-vm-test: FAILED: $*" | tee -a "$log" >&2
  exit 1
}

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() {
  [ "$apt_updated" = 1 ] && return 0
  apt_updated=1
  say "apt-get update"
  apt-get update -qq >/dev/null
}
# apt_install PKG...: install with apt-get (root only).
apt_install() {
  [ "$(id -u)" = 0 ] || return 1
  command -v apt-get >/dev/null || return 1
  say "apt-get install $*"
  if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    apt_update || return 1
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
  fi
}

# --- tools -----------------------------------------------------------------
command -v go >/dev/null || fail "go is not on PATH"
if ! command -v qemu-system-x86_64 >/dev/null; then
  apt_install qemu-system-x86 ||
    skip "qemu-system-x86_64 is not installed and could not be installed (apt-get install qemu-system-x86 needs root and Debian's package archive)"
fi
if ! command -v gcc >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/libc.a ]; then
  apt_install gcc libc6-dev || fail "gcc and libc6-dev (for a static C target) are missing and could not be installed"
fi

# --- kernel ----------------------------------------------------------------
# The image package the meta package depends on now: linux-image-6.1.0-N-cloud-amd64.
kernel_pkg() {
  apt-cache depends "$meta" 2>/dev/null |
    sed -n 's/^ *|\{0,1\}Depends: *\(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1 || true
}
# fetch_kernel: sets vmlinuz to $cache/$pkg.vmlinuz, downloading and
# unpacking the package when the cache lacks it; why=... when it cannot.
why=
fetch_kernel() {
  local deb dlerr=
  vmlinuz=$cache/$pkg.vmlinuz
  [ -s "$vmlinuz" ] && return 0
  deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    say "downloading $pkg (the kernel of $meta) into .cache/kernel-vm/"
    dl() { dlerr=$(cd "$cache" && apt-get download -q "$pkg" 2>&1 >/dev/null) || return 1; }
    if ! dl; then
      if ! { [ "$(id -u)" = 0 ] && apt_update 2>/dev/null && dl; }; then
        why="cannot download the kernel package $pkg: $(echo "$dlerr" | grep -v unsandboxed | tail -n 3 | tr '\n' ' ')"
        return 1
      fi
    fi
    deb=$(ls "$cache/${pkg}"_*.deb | head -n 1)
  fi
  say "unpacking vmlinuz from $(basename "$deb")"
  dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './boot/vmlinuz-*' >"$vmlinuz.tmp" || true
  [ -s "$vmlinuz.tmp" ] || fail "no ./boot/vmlinuz-* in $deb"
  mv "$vmlinuz.tmp" "$vmlinuz"
  # The kernels the meta package named before are of no more use.
  for f in "$cache"/linux-image-*.deb "$cache"/*.vmlinuz; do
    case $f in "$cache/${pkg}"[_.]*) ;; *) rm -f "$f" ;; esac
  done
}

pkg=$(kernel_pkg)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
  apt_update 2>/dev/null || true
  pkg=$(kernel_pkg)
fi
if [ -z "$pkg" ]; then
  why="cannot find the kernel image package: apt-cache depends $meta names no linux-image package (an unknown package, no package lists, or apt-get update failed)"
fi
if [ -z "$pkg" ] || ! fetch_kernel; then
  # Offline: a kernel an earlier run cached will do.
  vmlinuz=$(ls -t "$cache"/*.vmlinuz 2>/dev/null | head -n 1 || true)
  [ -n "$vmlinuz" ] || skip "$why, and .cache/kernel-vm/ has no kernel"
  pkg=$(basename "$vmlinuz" .vmlinuz)
  say "$why: using the cached $pkg"
fi

# --- initramfs ---------------------------------------------------------------
work=$(mktemp -d /tmp/ptprobe-kernel-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
say "building the static test binary, /init and the C target"
CGO_ENABLED=0 go test -c -o "$work/kernel.test" ./kernel/
CGO_ENABLED=0 go build -o "$work/init" ./scripts/vminit
go build -o "$work/mkinitramfs" ./scripts/mkinitramfs
gcc -O2 -static -o "$work/probes" testdata/c/probes.c
files=(/init="$work/init" /kernel.test="$work/kernel.test" /bin/probes="$work/probes")
for f in kernel/internal/tracefs/testdata/README-*.txt; do
  files+=("/$f=$root/$f")
done
"$work/mkinitramfs" -o "$work/initrd.gz" "${files[@]}"
say "initramfs: $(du -k "$work/initrd.gz" | cut -f1) KiB"

# --- boot --------------------------------------------------------------------
accel=${PTPROBE_VM_ACCEL:-}
if [ -z "$accel" ]; then
  accel=tcg
  if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    accel=kvm
  fi
fi
inner=$((limit - 30)) # the tests' own limit inside, leaving time to boot

boot() {
  local accel=$1 cpu=qemu64
  [ "$accel" = kvm ] && cpu=host
  say "booting $pkg in qemu ($accel), at most ${limit} s"
  set +e
  # (The braces keep bash's own "Aborted" notice of a qemu killed by a
  # signal off the output: qemu's message is in qemu.err.)
  {
    timeout -k 5 "$limit" qemu-system-x86_64 -M pc -accel "$accel" -cpu "$cpu" -smp 1 -m 512 \
      -nographic -no-reboot -nic none \
      -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
      -append "console=ttyS0 panic=-1 quiet ptprobe_run=$run_re ptprobe_timeout=$inner" \
      </dev/null >"$work/serial.raw" 2>"$work/qemu.err"
  } 2>/dev/null
  qrc=$?
  set -e
  # The serial console writes \r\n, and SeaBIOS terminal escapes.
  tr -d '\r' <"$work/serial.raw" | sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' >"$log"
  if [ -s "$work/qemu.err" ]; then
    { echo "--- qemu's standard error:"; cat "$work/qemu.err"; } >>"$log"
  fi
  say "qemu exited with status $qrc"
}

boot "$accel"
if ! grep -q 'vminit: kernel ' "$log" && [ "$accel" = kvm ]; then
  say "no /init output with KVM (qemu: $(head -n 2 "$work/qemu.err" | tr '\n' ' ')): trying TCG"
  accel=tcg
  boot tcg
fi

result=$(sed -n 's/^.*PTPROBE_VM_RESULT exit=\([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
if ! grep -q 'vminit: kernel ' "$log"; then
  if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    skip "qemu ($accel) did not get the kernel to run /init within $limit s (log: out/kernel-vm-test.log)"
  fi
  if [ "$qrc" != 0 ] && ! grep -q . "$work/serial.raw"; then
    skip "qemu ($accel) cannot run here: exit status $qrc: $(head -c 300 "$work/qemu.err" | tr '\n' ' ')"
  fi
  tail -n 30 "$log" >&2
  fail "the kernel did not run /init (qemu status $qrc, log: out/kernel-vm-test.log)"
fi

# The tests' output, between /init's lines.
sed -n '/vminit: kernel /,/PTPROBE_VM_RESULT exit=/p' "$log"
passed=$(grep -cE '^ *--- PASS' "$log" || true)
failed=$(grep -cE '^ *--- FAIL' "$log" || true)
skipped=$(grep -cE '^ *--- SKIP' "$log" || true)
if [ -z "$result" ]; then
  fail "no result line from /init (qemu status $qrc; log: out/kernel-vm-test.log)"
fi
say "log: out/kernel-vm-test.log"
echo "kernel-vm: $passed passed, $failed failed, $skipped skipped"
if [ "$result" = 0 ] && [ "$passed" = 0 ]; then
  fail "the tests passed but none ran (-test.run $run_re)"
fi
# 77 means skipped to the callers: a test binary never exits so, but be sure.
[ "$result" = "$SKIP" ] && result=1
exit "$result"
