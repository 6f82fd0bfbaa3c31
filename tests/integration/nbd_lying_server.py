"""An NBD server that lies in its block status, for what nbdkit cannot
send (it clips extents to the export): usage

    nbd_lying_server.py SOCKET READY SIZE EXTENT_BYTES

serves SIZE bytes of 0x5a on the Unix socket SOCKET, one client after
another, and answers every block status query with one data extent of
EXTENT_BYTES from the offset asked about, which may reach past the
export's end.  It touches READY once it listens, and exits after 60 s.  Fixed newstyle handshake, structured replies, base:allocation
(the NBD protocol, doc/proto.md)."""
import socket
import struct
import sys
import time

OPT_MAGIC = 0x3E889045565A9
REPLY_MAGIC = 0x668E33EF
NBD_OPT_GO, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_SET_META_CONTEXT = 7, 8, 10
REP_ACK, REP_INFO, REP_META_CONTEXT, REP_ERR_UNSUP = 1, 3, 4, 2**31 + 1
CMD_READ, CMD_DISC, CMD_BLOCK_STATUS = 0, 2, 7
REPLY_FLAG_DONE, TYPE_OFFSET_DATA, TYPE_BLOCK_STATUS = 1, 1, 5
CONTEXT_ID = 1


def receive(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def option_reply(conn, option, kind, data=b""):
    conn.sendall(struct.pack(">QIII", OPT_MAGIC, option, kind, len(data)) + data)


def chunk(conn, handle, kind, payload):
    conn.sendall(struct.pack(">IHHQI", REPLY_MAGIC, REPLY_FLAG_DONE, kind,
                             handle, len(payload)) + payload)


def serve(conn, size, extent_bytes, deadline):
    conn.sendall(b"NBDMAGIC" + struct.pack(">QH", 0x49484156454F5054, 3))
    receive(conn, 4)
    while True:
        _, option, length = struct.unpack(">QII", receive(conn, 16))
        data = receive(conn, length)
        if option == NBD_OPT_STRUCTURED_REPLY:
            option_reply(conn, option, REP_ACK)
        elif option == NBD_OPT_SET_META_CONTEXT:
            name_length = struct.unpack(">I", data[:4])[0]
            queries = data[8 + name_length:]
            while queries:
                query_length = struct.unpack(">I", queries[:4])[0]
                query = queries[4:4 + query_length]
                queries = queries[4 + query_length:]
                if query == b"base:allocation":
                    option_reply(conn, option, REP_META_CONTEXT,
                                 struct.pack(">I", CONTEXT_ID) + query)
            option_reply(conn, option, REP_ACK)
        elif option == NBD_OPT_GO:
            # Flags: has flags, read only, sends structured replies.
            option_reply(conn, option, REP_INFO, struct.pack(">HQH", 0, size, 1 | 2))
            option_reply(conn, option, REP_ACK)
            break
        else:
            option_reply(conn, option, REP_ERR_UNSUP)
    while time.time() < deadline:
        _, _, kind, handle, offset, length = struct.unpack(">IHHQQI", receive(conn, 28))
        if kind == CMD_DISC:
            break
        if kind == CMD_READ:
            chunk(conn, handle, TYPE_OFFSET_DATA, struct.pack(">Q", offset) + b"\x5a" * length)
        elif kind == CMD_BLOCK_STATUS:
            chunk(conn, handle, TYPE_BLOCK_STATUS,
                  struct.pack(">III", CONTEXT_ID, extent_bytes, 0))


def main():
    path, ready, size, extent_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    deadline = time.time() + 60
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    open(ready, "w").close()
    while time.time() < deadline:
        server.settimeout(deadline - time.time())
        try:
            conn = server.accept()[0]
        except OSError:
            break
        conn.settimeout(deadline - time.time())
        try:
            serve(conn, size, extent_bytes, deadline)
        except (EOFError, OSError):
            pass
        conn.close()


if __name__ == "__main__":
    main()
