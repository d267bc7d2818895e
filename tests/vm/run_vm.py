#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots one QEMU guest with systemd as PID 1 and the project's install laid over the host's
root, runs guest_check.py in it, and brings the results out. See README.md.

    BUILD_DIR=build tests/vm/run_vm.py [OUTDIR]

The guest (TCG; this machine has no usable /dev/kvm):
- kernel: Debian's linux-image-6.1.*-amd64 unpacked by tools/install-deps.sh into
  /var/cache/sandboxd-test/vm, with kmod and udev (the host has neither); the vmlinux is taken
  out of the vmlinuz here and booted by PVH, with qboot as the firmware;
- root: the host's / read-only over 9p, under the unpacked packages (a second share) and under
  the project's `meson install --destdir` tree with this test's units (a third share), and a
  tmpfs on top, joined by overlayfs in an initramfs made here (busybox-static, the virtio-pci,
  9p and overlay modules, an /init that ends in switch_root to systemd);
- systemd boots vm-test.target: basic.target, sandboxd-vsock.socket (enabled as
  `systemctl enable` would) and vm-test-check.service, which runs guest_check.py and powers
  the guest off;
- results: a writable 9p share, mounted at /vm-test-out in the guest: results.jsonl (one
  JSON object per check, written as each ends), journal.txt; the serial console goes to
  console.log.

bench_vm.py boots the same guest with the benchmark instead of the checks (run()'s keyword
arguments); nothing here runs it.
"""

import json
import lzma
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get('SANDBOXD_VM_CACHE', '/var/cache/sandboxd-test/vm'))
QEMU = 'qemu-system-x86_64'
QBOOT = Path('/usr/share/qemu/qboot.rom')
BUSYBOX = Path('/bin/busybox')
# What /init needs before the root exists; their dependencies come from modules.dep.
INITRD_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay']
TARGET = 'vm-test.target'
GUEST_DIR = '/usr/lib/vm-test'     # where guest_check.py is in the guest
OUT_MOUNT = '/vm-test-out'
# Hard bound on the guest, from QEMU's start to its exit; the checks themselves end well before.
BOOT_TIMEOUT = float(os.environ.get('SANDBOXD_VM_TIMEOUT', '170'))


class Unavailable(Exception):
    """The guest cannot be built here; the message says why and what to install."""


def prerequisites():
    """The kernel version of the cache; raises Unavailable with the reason."""
    hint = 'run tools/install-deps.sh as root'
    if not shutil.which(QEMU):
        raise Unavailable(f'{QEMU} is not installed ({hint}: qemu-system-x86)')
    if not QBOOT.exists():
        raise Unavailable(f'{QBOOT} is missing ({hint}: qemu-system-data)')
    if not BUSYBOX.exists():
        raise Unavailable(f'{BUSYBOX} is missing ({hint}: busybox-static)')
    if subprocess.run(['ldd', str(BUSYBOX)], capture_output=True).returncode == 0:
        raise Unavailable(f'{BUSYBOX} is not static ({hint}: busybox-static)')
    ready = CACHE / 'ready'
    if not ready.exists():
        raise Unavailable(f'no guest kernel in {CACHE} ({hint})')
    kver = ready.read_text().strip()
    for p in (CACHE / f'boot/vmlinuz-{kver}', CACHE / f'usr/lib/modules/{kver}/modules.dep',
              CACHE / 'usr/lib/systemd/systemd-udevd', CACHE / 'usr/bin/kmod'):
        if not os.path.lexists(p):      # links in the packages are absolute, for the guest
            raise Unavailable(f'{p} is missing: the cache is incomplete ({hint} after '
                              f'rm -rf {CACHE})')
    if os.geteuid() != 0:
        raise Unavailable('needs root (QEMU exports / with security_model=none)')
    return kver


# --- the kernel -------------------------------------------------------------------------------

def extract_vmlinux(vmlinuz, dest):
    """The ELF kernel inside a bzImage, as scripts/extract-vmlinux finds it: the first compressed
    stream, at any offset, that decompresses to an ELF file."""
    data = Path(vmlinuz).read_bytes()

    def xz(buf):
        return lzma.LZMADecompressor().decompress(buf)

    def gz(buf):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(buf)

    def zst(buf):
        return subprocess.run(['zstd', '-dc'], input=buf, capture_output=True).stdout

    for magic, decompress in ((b'\xfd7zXZ\x00', xz), (b'\x1f\x8b\x08', gz),
                              (b'\x28\xb5\x2f\xfd', zst)):
        pos = data.find(magic)
        while pos >= 0:
            try:
                out = decompress(data[pos:])
            except (lzma.LZMAError, zlib.error, OSError):
                out = b''
            if out[:4] == b'\x7fELF':
                tmp = f'{dest}.tmp{os.getpid()}'
                Path(tmp).write_bytes(out)
                os.replace(tmp, dest)
                return dest
            pos = data.find(magic, pos + 1)
    raise Unavailable(f'no ELF kernel found in {vmlinuz}')


def vmlinux(kver, work):
    """The uncompressed kernel (PVH boot), kept next to the cache when that is writable."""
    cached = CACHE.parent / f'vmlinux-{kver}'
    if cached.exists():
        return cached
    try:
        return Path(extract_vmlinux(CACHE / f'boot/vmlinuz-{kver}', cached))
    except OSError:
        return Path(extract_vmlinux(CACHE / f'boot/vmlinuz-{kver}', work / 'vmlinux'))


# --- the initramfs ----------------------------------------------------------------------------

INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "initramfs: $*" >/dev/console; sleep 1; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod "/modules/$m" || fail "insmod $m"; done
o=trans=virtio,version=9p2000.L,msize=524288
mount -t 9p -o $o,cache=loose,ro host /lower/host || fail "9p host"
mount -t 9p -o $o,cache=loose,ro pkgs /lower/pkgs || fail "9p pkgs"
mount -t 9p -o $o,cache=loose,ro guest /lower/guest || fail "9p guest"
mount -t tmpfs -o mode=0755 rw /rw && mkdir /rw/upper /rw/work || fail "tmpfs"
mount -t overlay -o lowerdir=/lower/guest:/lower/pkgs:/lower/host,upperdir=/rw/upper,workdir=/rw/work \
        root /newroot || fail "overlay"
# The host is a container: its /.dockerenv would make systemd-detect-virt say docker.
rm -f /newroot/.dockerenv
# Debian's tmpfiles rule for /tmp would empty the host's /tmp through 9p.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/tmp || fail "tmpfs /tmp"
mount -t 9p -o $o out /newroot@OUT@ || fail "9p out"
umount /proc /sys
umount /dev
exec switch_root /newroot /lib/systemd/systemd
'''


def module_closure(moddir, names):
    """Relative paths of the named modules and their dependencies, dependencies first."""
    deps = {}
    for line in (moddir / 'modules.dep').read_text().splitlines():
        path, _, rest = line.partition(':')
        deps[path] = rest.split()
    by_name = {Path(p).name.split('.')[0].replace('-', '_'): p for p in deps}
    order = []

    def visit(path):
        if path in order:
            return
        for d in deps[path]:
            visit(d)
        order.append(path)

    for n in names:
        if n not in by_name:
            raise Unavailable(f'module {n} not in {moddir}/modules.dep')
        visit(by_name[n])
    return order


def write_cpio(path, entries):
    """A newc cpio archive of entries (name, mode, data or target, rdev)."""
    with open(path, 'wb') as f:
        for ino, (name, mode, data, rdev) in enumerate(entries + [('TRAILER!!!', 0, b'', 0)], 1):
            if isinstance(data, str):
                data = data.encode()
            bname = name.encode() + b'\0'
            fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xff,
                      len(bname), 0]
            hdr = b'070701' + b''.join(b'%08X' % v for v in fields)
            f.write(hdr + bname + b'\0' * (-(len(hdr) + len(bname)) % 4))
            f.write(data + b'\0' * (-len(data) % 4))


def build_initrd(kver, dest):
    moddir = CACHE / f'usr/lib/modules/{kver}'
    mods = module_closure(moddir, INITRD_MODULES)
    entries = [(d, stat.S_IFDIR | 0o755, b'', 0) for d in
               ('bin', 'dev', 'proc', 'sys', 'rw', 'newroot', 'lower', 'lower/host',
                'lower/pkgs', 'lower/guest', 'modules')]
    entries.append(('dev/console', stat.S_IFCHR | 0o600, b'', (5 << 8) | 1))
    entries.append(('bin/busybox', stat.S_IFREG | 0o755, BUSYBOX.read_bytes(), 0))
    entries.append(('init', stat.S_IFREG | 0o755, INIT.replace('@OUT@', OUT_MOUNT), 0))
    names = []
    for m in mods:
        names.append(Path(m).name)
        entries.append((f'modules/{Path(m).name}', stat.S_IFREG | 0o644,
                        (moddir / m).read_bytes(), 0))
    entries.append(('modules.list', stat.S_IFREG | 0o644, '\n'.join(names) + '\n', 0))
    write_cpio(dest, entries)
    return dest


# --- the guest's own layer --------------------------------------------------------------------

CHECK_SERVICE = 'vm-test-check.service'

TARGET_UNIT_TEMPLATE = '''[Unit]
Description=sandboxd VM test: only what the test needs
Requires=basic.target
After=basic.target
Wants={service}
AllowIsolate=yes
'''
TARGET_UNIT = TARGET_UNIT_TEMPLATE.format(service=CHECK_SERVICE)

CHECK_UNIT = f'''[Unit]
Description=sandboxd VM test: the checks in the guest
After=basic.target sockets.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 {GUEST_DIR}/guest_check.py {OUT_MOUNT}
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=140
'''

# Units of the host that basic.target would start and the test does not need.
MASKED = ['systemd-timesyncd.service', 'systemd-pstore.service', 'timers.target',
          'e2scrub_reap.service', 'systemd-firstboot.service', 'systemd-update-utmp.service']


def meson_install(builddir, dest):
    if not (builddir / 'build.ninja').exists():
        raise RuntimeError(f'{builddir} is not a configured build directory (set BUILD_DIR)')
    r = subprocess.run(['ninja', '-C', str(builddir)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'ninja -C {builddir} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}')
    r = subprocess.run(['meson', 'install', '-C', str(builddir), '--destdir', str(dest),
                        '--no-rebuild', '--quiet'], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'meson install failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}')


def installed_unit(tree, name):
    """The path of an installed unit of the project, as the guest sees it."""
    units = sorted(tree.glob(f'usr/**/systemd/system/{name}'))
    if not units:
        raise RuntimeError(f'the install in {tree} has no {name}')
    return '/' + str(units[0].relative_to(tree))


def build_guest_tree(builddir, tree, service=CHECK_SERVICE, service_unit=CHECK_UNIT,
                     customize=None):
    """The project's install plus this test's units and scripts: the top read-only layer.
    service (its unit text service_unit) is what vm-test.target starts; customize(tree), if
    given, adds to the tree last (bench_vm.py: the benchmark instead of the checks)."""
    meson_install(builddir, tree)
    unit_path = installed_unit(tree, 'sandboxd-vsock.socket')
    etc = tree / 'etc/systemd/system'
    (etc / 'sockets.target.wants').mkdir(parents=True, exist_ok=True)
    # What `systemctl enable sandboxd-vsock.socket` does ([Install] WantedBy=sockets.target).
    os.symlink(unit_path, etc / 'sockets.target.wants/sandboxd-vsock.socket')
    (etc / TARGET).write_text(TARGET_UNIT_TEMPLATE.format(service=service))
    (etc / service).write_text(service_unit)
    for unit in MASKED:
        os.symlink('/dev/null', etc / unit)
    # A machine id of its own: an empty one would be a first boot (systemd-firstboot prompts).
    (tree / 'etc/machine-id').write_text(os.urandom(16).hex() + '\n')
    gdir = tree / GUEST_DIR.lstrip('/')
    gdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / 'guest_check.py', gdir)
    shutil.copy(REPO / 'tests/integration/sandbox_client.py', gdir)
    (tree / OUT_MOUNT.lstrip('/')).mkdir()
    if customize:
        customize(tree)


# --- the boot ---------------------------------------------------------------------------------

def qemu_argv(kernel, initrd, tree, out, console, memory=1024):
    def share(tag, path, readonly=True):
        return ['-virtfs', f'local,path={path},mount_tag={tag},security_model=none,'
                f'multidevs=remap{",readonly=on" if readonly else ""}']
    cmdline = ('console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off '
               f'systemd.unit={TARGET} systemd.show_status=error')
    return ([QEMU, '-machine', 'pc,accel=tcg', '-cpu', 'qemu64', '-smp', '2', '-m', str(memory),
             '-nodefaults', '-nic', 'none', '-display', 'none', '-no-reboot',
             '-bios', str(QBOOT), '-kernel', str(kernel), '-initrd', str(initrd),
             '-append', cmdline, '-serial', f'file:{console}', '-monitor', 'none']
            + share('host', '/') + share('pkgs', CACHE) + share('guest', tree)
            + share('out', out, readonly=False))


def read_results(out):
    results = []
    try:
        text = (out / 'results.jsonl').read_text(errors='replace')
    except OSError:
        return results
    for line in text.splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:
            pass        # a line cut off by a timeout
    return results


def _interrupt(signum, frame):
    # A SIGTERM'd run still kills QEMU and removes its files.
    raise KeyboardInterrupt


def run(outdir, builddir, timeout=BOOT_TIMEOUT, *, service=CHECK_SERVICE, service_unit=CHECK_UNIT,
        customize=None, memory=1024):
    """Builds the guest and boots it once. Returns a dict: results (list of check results),
    console (text), journal (text), seconds (boot to poweroff), timed_out, returncode.
    The keyword arguments replace the checks by another service (see build_guest_tree) and
    size the guest's memory in MiB."""
    t0 = time.monotonic()
    kver = prerequisites()
    outdir = Path(outdir)
    work = Path(tempfile.mkdtemp(prefix='sandboxd-vm-', dir='/var/tmp'))
    qemu = None
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        kernel = vmlinux(kver, work)
        initrd = build_initrd(kver, work / 'initrd.cpio')
        tree = work / 'guest'
        build_guest_tree(Path(builddir), tree, service, service_unit, customize)
        out = outdir / 'out'
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        console = outdir / 'console.log'
        prepared = time.monotonic() - t0
        t1 = time.monotonic()
        qemu = subprocess.Popen(qemu_argv(kernel, initrd, tree, out, console, memory),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            qout, _ = qemu.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(qemu.pid, signal.SIGKILL)
            qout, _ = qemu.communicate(timeout=30)
        seconds = time.monotonic() - t1

        def text(p):
            try:
                return Path(p).read_text(errors='replace')
            except OSError:
                return ''
        return {'results': read_results(out), 'console': text(console),
                'journal': text(out / 'journal.txt'), 'qemu_output': qout.decode(errors='replace'),
                'seconds': seconds, 'prepare_seconds': prepared, 'timed_out': timed_out,
                'returncode': qemu.returncode, 'kernel': kver}
    finally:
        if qemu and qemu.poll() is None:
            os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait()
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_term)


def main():
    outdir = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix='sandboxd-vm-out-'))
    builddir = Path(os.environ.get('BUILD_DIR', REPO / 'build'))
    try:
        res = run(outdir, builddir)
    except Unavailable as e:
        print(f'skipped: {e}')
        return 77
    for r in res['results']:
        print(f"{'ok  ' if r.get('ok') else 'FAIL'} {r.get('check')}: {r.get('detail', '')}"[:600])
    print(f"kernel {res['kernel']}; prepared in {res['prepare_seconds']:.1f} s; QEMU ran "
          f"{res['seconds']:.1f} s{' (timed out, killed)' if res['timed_out'] else ''}; "
          f"output in {outdir}")
    done = any(r.get('check') == 'done' for r in res['results'])
    return 0 if done and all(r.get('ok') for r in res['results']) else 1


if __name__ == '__main__':
    sys.exit(main())
