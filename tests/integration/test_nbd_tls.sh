# NBD over TLS (nbds+unix:// and nbds://), served by nbdkit with a PSK
# and with X.509 certificates made here: the same bytes as from the raw
# file; a URI and a server that disagree on TLS, a wrong key and an
# untrusted certificate are one line, exit status 1 and nothing written.
. "$(dirname "$0")/lib.sh"

why=""
if ! have nbdkit; then
    why="nbdkit is not installed (Debian package nbdkit)"
elif ! nbdkit --dump-config | grep -qx 'tls=yes'; then
    why="this nbdkit was built without TLS"
elif ! have certtool || ! have psktool; then
    why="certtool and psktool are not installed (Debian package gnutls-bin)"
fi
if [ -n "$why" ]; then
    skip "NBD over TLS" "$why"
    finish
    exit 0
fi

# --- Servers ---------------------------------------------------------------
. "$top/tests/integration/nbdkit.sh"

# serve_disk NAME ARGS...: serves disk.raw on the Unix socket NAME.sock.
serve_disk() {
    local name=$1; shift
    serve "$name" "$@" -r file "$scratch/disk.raw"
}

# serve_disk_tcp NAME ARGS...: the same on 127.0.0.1 at a free port; sets
# port.
serve_disk_tcp() {
    local name=$1; shift
    serve_tcp "$name" "$@" -r file "$scratch/disk.raw"
}

# same_output URI: the stream from URI is that from disk.raw, byte for
# byte; leaves got.qcow2.
same_output() {
    timeout 60 "$Q2S" disk.raw > want.qcow2 || { echo "disk.raw failed"; return 1; }
    timeout 60 "$Q2S" "$1" > got.qcow2 || { echo "$1 failed"; return 1; }
    cmp want.qcow2 got.qcow2
}

# refused PATTERN URI: one line on stderr that matches PATTERN, exit
# status 1, and nothing on stdout.
refused() {
    fails 1 "$1" "$Q2S" "$2" || return 1
    [ ! -s out.bin ] || { echo "$(wc -c < out.bin) bytes written"; return 1; }
}

check_valid() {
    if have qemu-img; then
        check "$1" valid_image got.qcow2 disk.raw
    else
        skip "$1" "qemu-img is not installed (Debian package qemu-utils)"
    fi
}

# --- Credentials -----------------------------------------------------------
# A PSK for alice, and another key for alice that the server does not have.
psktool -u alice -p keys.psk > /dev/null 2>&1
psktool -u alice -p wrong.psk > /dev/null 2>&1
# A CA; a server certificate for localhost (nbdkit --tls-certificates=DIR
# reads ca-cert.pem, server-cert.pem, server-key.pem); a client certificate
# (libnbd's tls-certificates=DIR reads ca-cert.pem, client-cert.pem,
# client-key.pem); and a client of another CA, which trusts only that CA.
# make_cert DIR NAME CA-DIR TEMPLATE...: DIR/NAME-key.pem, DIR/NAME-cert.pem
# signed by CA-DIR's CA.
make_cert() {
    local dir=$1 name=$2 ca=$3; shift 3
    mkdir -p "$dir"
    certtool --generate-privkey --key-type=ecdsa --outfile "$dir/$name-key.pem" 2>/dev/null &&
        printf '%s\n' "$@" 'expiration_days = 2' > "$dir/$name.info" &&
        certtool --generate-certificate --load-ca-certificate "$ca/ca-cert.pem" \
            --load-ca-privkey "$ca/ca-key.pem" --load-privkey "$dir/$name-key.pem" \
            --template "$dir/$name.info" --outfile "$dir/$name-cert.pem" 2>/dev/null &&
        cp "$ca/ca-cert.pem" "$dir/"
}
make_ca() {
    mkdir -p "$1"
    certtool --generate-privkey --key-type=ecdsa --outfile "$1/ca-key.pem" 2>/dev/null &&
        printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$1" > "$1/ca.info" &&
        certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
            --template "$1/ca.info" --outfile "$1/ca-cert.pem" 2>/dev/null
}
make_credentials() {
    make_ca ca && make_ca otherca &&
        make_cert server server ca 'cn = localhost' 'dns_name = localhost' \
            'ip_address = 127.0.0.1' tls_www_server signing_key encryption_key &&
        make_cert client client ca 'cn = client' tls_www_client signing_key &&
        make_cert other client otherca 'cn = client' tls_www_client signing_key
}
if [ -s keys.psk ] && [ -s wrong.psk ] && make_credentials; then
    ok "a PSK and certificates made with psktool and certtool"
else
    not_ok "a PSK and certificates made with psktool and certtool"
    finish
    exit 1
fi

make_image disk.raw $((3 * 1024 * 1024))
sock=$scratch/psk.sock

# --- A PSK ---------------------------------------------------------------------
if serve_disk psk --tls=require --tls-psk="$scratch/keys.psk"; then
    check "nbds+unix:// with tls-psk-file: the same bytes as from the raw file" \
        same_output "nbds+unix://alice@/?socket=$sock&tls-psk-file=$scratch/keys.psk"
    check_valid "nbds+unix:// with tls-psk-file: qemu-img check and compare"
    check "a plain URI, the server requires TLS: one line that says so, status 1, nothing written" \
        refused "the server requires TLS: use an nbds:// or nbds+unix:// URI" \
        "nbd+unix:///?socket=$sock"
    check "a wrong PSK: one line, status 1, nothing written" \
        refused "the TLS handshake failed: .*gnutls_" \
        "nbds+unix://alice@/?socket=$sock&tls-psk-file=$scratch/wrong.psk"
    # Without a user name libnbd takes the login name: none here (no
    # terminal), or one the server does not know.
    check "no user name in the URI: one line, status 1, nothing written" \
        refused "TLS" "nbds+unix:///?socket=$sock&tls-psk-file=$scratch/keys.psk"
    check "a PSK file that does not exist: one line, status 1, nothing written" \
        refused "missing.psk: No such file" \
        "nbds+unix://alice@/?socket=$sock&tls-psk-file=$scratch/missing.psk"
else
    not_ok "nbdkit --tls=require --tls-psk starts"
fi

# --- Certificates ------------------------------------------------------------------
sock=$scratch/x509.sock
if serve_disk x509 --tls=require --tls-certificates="$scratch/server" --tls-verify-peer; then
    check "nbds+unix:// with tls-certificates: the same bytes as from the raw file" \
        same_output "nbds+unix:///?socket=$sock&tls-certificates=$scratch/client"
    check_valid "nbds+unix:// with tls-certificates: qemu-img check and compare"
    check "a client certificate of another CA: one line, status 1, nothing written" \
        refused "the TLS handshake failed" \
        "nbds+unix:///?socket=$sock&tls-certificates=$scratch/other"
    check "a plain URI, the server requires TLS (certificates): one line, status 1, nothing written" \
        refused "the server requires TLS" "nbd+unix:///?socket=$sock"
else
    not_ok "nbdkit --tls=require --tls-certificates starts"
fi

if serve_disk_tcp tcp --tls=require --tls-certificates="$scratch/server" --tls-verify-peer; then
    check "nbds://localhost:PORT/ with tls-certificates: the same bytes" \
        same_output "nbds://localhost:$port/?tls-certificates=$scratch/client"
    check "nbds:// to a server whose certificate another CA signed: one line, status 1, nothing written" \
        refused "the server's TLS certificate is not trusted" \
        "nbds://localhost:$port/?tls-certificates=$scratch/other"
else
    not_ok "nbdkit --tls=require on 127.0.0.1 starts"
fi

# --- A server without TLS --------------------------------------------------------
sock=$scratch/plain.sock
if serve_disk plain; then
    check "nbds+unix:// to a server without TLS: one line that says so, status 1, nothing written" \
        refused "the server does not offer TLS, which an nbds URI requires" \
        "nbds+unix:///?socket=$sock&tls-certificates=$scratch/client"
else
    not_ok "nbdkit without TLS starts"
fi

stop_servers
check "no nbdkit left running" test -z "$(pgrep -f "nbdkit.*$scratch")"
finish
