# A stand-in for the unix socket that Firecracker and Cloud Hypervisor put in front of a guest's vsock:
# a client sends "CONNECT PORT\n", is answered "OK <host port>\n", and from then on its bytes (never
# fds) go to the guest's listener on PORT, here sandboxd's peer-to-peer socket.
import os
import socket
import threading


class VsockMux:
    """mode: 'ok' answers OK and forwards; 'refuse' answers something else; 'silent' never answers;
    'close' closes the connection after the request (as Firecracker does when nothing listens);
    'ok-silent' and 'ok-close' answer OK, then say nothing, or close."""

    def __init__(self, path, daemon_sock, mode='ok', answer=None):
        self.path = path
        self.daemon_sock = daemon_sock
        self.mode = mode
        self.answer = answer or (b'FAILURE\n' if mode == 'refuse' else b'OK 1073741824\n')
        self.requests = []       # the CONNECT lines received
        self.first_bytes = []    # of each connection after the handshake: the D-Bus auth exchange
        self.conns = []
        if os.path.exists(path):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def address(self, port=1024):
        return 'vsock-mux:path=%s,port=%d' % (self.path, port)

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _read_line(s):
        line = b''
        while not line.endswith(b'\n') and len(line) < 256:
            b = s.recv(1)
            if not b:
                break
            line += b
        return line

    def _serve(self, client):
        try:
            line = self._read_line(client)
        except OSError:
            return
        self.requests.append(line)
        if self.mode == 'silent':
            return  # kept open, never answered
        if self.mode == 'close':
            client.close()
            return
        if self.mode == 'refuse':
            client.sendall(self.answer)
            return
        if self.mode in ('ok-silent', 'ok-close'):
            # The guest accepted, but what listens there says nothing, or hangs up.
            client.sendall(self.answer)
            if self.mode == 'ok-close':
                client.close()
            return
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.connect(self.daemon_sock)
        self.conns.append(server)
        client.sendall(self.answer)
        self.first_bytes.append(bytearray())
        record = self.first_bytes[-1]
        threading.Thread(target=self._pump, args=(client, server, record), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    @staticmethod
    def _pump(src, dst, record):
        try:
            while True:
                # recv, not recvmsg: any fd sent along is dropped here, as on a real vsock.
                data = src.recv(65536)
                if not data:
                    break
                if record is not None and len(record) < 4096:
                    record += data[:4096 - len(record)]
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
