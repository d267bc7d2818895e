#!/usr/bin/python3
# stdio_forward.py SOCKET [IGNORED...]: what socat STDIO UNIX-CONNECT:SOCKET does, for a unixexec:
# address: the bytes of stdin go to the unix socket and the socket's to stdout; fds sent along are
# dropped (read(), not recvmsg()), while D-Bus's NEGOTIATE_UNIX_FD passes through as bytes to a
# server that agrees to it. Extra arguments are ignored, so it can stand in for ssh as well.
import os
import socket
import sys
import threading


def main():
    # sd-bus made its socket pair non-blocking, our end included.
    os.set_blocking(0, True)
    os.set_blocking(1, True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sys.argv[1])

    def upstream():
        # A client that exits with messages still unread (a PropertiesChanged after Exited)
        # resets its end: that is its end of input too, as for socat.
        try:
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                sock.sendall(data)
        except (BrokenPipeError, ConnectionError):
            pass
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while True:
        data = sock.recv(65536)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]


if __name__ == '__main__':
    try:
        main()
    except (BrokenPipeError, ConnectionError):
        pass
