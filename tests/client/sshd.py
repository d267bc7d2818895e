# A private sshd on loopback for the -H tests: its own config, host key and client key in a temporary
# directory, key login for the user running the tests, and an ssh wrapper for $SANDBOXCTL_SSH.
import os
import pwd
import shutil
import socket
import subprocess
import time

SSHD = shutil.which('sshd') or ('/usr/sbin/sshd' if os.access('/usr/sbin/sshd', os.X_OK) else None)
SSH = shutil.which('ssh')
SSH_KEYGEN = shutil.which('ssh-keygen')
BRIDGE = shutil.which('systemd-stdio-bridge')

SSHD_CONFIG = '''Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
PrintMotd no
LogLevel ERROR
SetEnv PATH={path}
'''

SSH_CONFIG = '''Host sandboxd-test
  HostName 127.0.0.1
  Port {port}
  User {user}
  IdentityFile {dir}/client_key
  IdentitiesOnly yes
  UserKnownHostsFile {dir}/known_hosts
  StrictHostKeyChecking no
  BatchMode yes
  LogLevel ERROR
'''


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def unavailable_reason():
    for name, path in (('sshd (openssh-server)', SSHD), ('ssh', SSH), ('ssh-keygen', SSH_KEYGEN),
                       ('systemd-stdio-bridge', BRIDGE)):
        if not path:
            return name + ' is not installed'
    return None


class Sshd:
    def __init__(self, directory):
        self.dir = str(directory)
        self.port = free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        d = self.dir
        for key in ('host_key', 'client_key'):
            subprocess.run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-f', os.path.join(d, key)],
                           check=True, capture_output=True, timeout=30)
        shutil.copy(os.path.join(d, 'client_key.pub'), os.path.join(d, 'authorized_keys'))
        with open(os.path.join(d, 'sshd_config'), 'w') as f:
            f.write(SSHD_CONFIG.format(port=self.port, dir=d, path=os.environ.get('PATH', '/usr/bin:/bin')))
        with open(os.path.join(d, 'ssh_config'), 'w') as f:
            f.write(SSH_CONFIG.format(port=self.port, dir=d, user=self.user))
        self.ssh = os.path.join(d, 'ssh')
        with open(self.ssh, 'w') as f:
            f.write('#!/bin/sh\nexec %s -F %s "$@"\n' % (SSH, os.path.join(d, 'ssh_config')))
        os.chmod(self.ssh, 0o755)
        # sshd wants its privilege separation directory.
        if os.getuid() == 0:
            os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
        self.log = os.path.join(d, 'sshd.log')
        self.proc = subprocess.Popen([SSHD, '-D', '-e', '-f', os.path.join(d, 'sshd_config')],
                                     stdin=subprocess.DEVNULL, stdout=open(self.log, 'wb'),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.error = None
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                self.error = 'sshd exited: ' + open(self.log).read().strip()
                return
            r = subprocess.run([self.ssh, 'sandboxd-test', 'true'], capture_output=True, timeout=30)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.error = 'cannot log in to the test sshd: ' + r.stderr.decode().strip()
                return
            time.sleep(0.1)

    def env(self):
        return dict(os.environ, SANDBOXCTL_SSH=self.ssh)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
