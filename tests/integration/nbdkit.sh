# nbdkit servers for the NBD tests, sourced after lib.sh.
#
# Every nbdkit runs in the foreground as a child of this shell, with
# --exit-with-parent, its pid file in the scratch directory (so that its
# command line names the scratch directory), and its stderr in nbdkit.log.
# server_pids lists the servers not yet waited for: a pid that was waited
# for may belong to another process by now, and is never signalled.
server_pids=()
stop_servers() {
    local pid
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null; done
    server_pids=()
}
cleanup_hooks+=(stop_servers)

# reap PID: waits for a server that was stopped or died, and forgets it.
reap() {
    local pid keep=()
    wait "$1" 2>/dev/null
    for pid in "${server_pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    server_pids=("${keep[@]}")
}

# start_nbdkit NAME NBDKIT-ARGS...: starts nbdkit; waits until it accepts
# connections (it writes its pid file then).  Sets server_pid.
start_nbdkit() {
    local pidfile=$scratch/$1.pid; shift
    rm -f "$pidfile"
    nbdkit -f --exit-with-parent -P "$pidfile" "$@" \
        < /dev/null > /dev/null 2>> "$scratch/nbdkit.log" &
    server_pid=$!
    server_pids+=("$server_pid")
    local i
    for ((i = 0; i < 200; i++)); do
        [ -s "$pidfile" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$server_pid" 2>/dev/null
    reap "$server_pid"
    echo "# nbdkit $* did not start:"
    tail -n 5 "$scratch/nbdkit.log" | sed 's/^/# /'
    return 1
}

# serve NAME PLUGIN ARGS...: serves on the Unix socket NAME.sock; sets uri.
serve() {
    local name=$1; shift
    rm -f "$scratch/$name.sock"
    uri="nbd+unix:///?socket=$scratch/$name.sock"
    start_nbdkit "$name" -U "$scratch/$name.sock" "$@"
}

# serve_tcp NAME PLUGIN ARGS...: serves on 127.0.0.1 at a free port; sets
# uri and port.  A port in use makes nbdkit exit at once: another is tried.
serve_tcp() {
    local name=$1; shift
    local attempt
    for ((attempt = 0; attempt < 10; attempt++)); do
        port=$((20000 + RANDOM % 40000))
        uri="nbd://127.0.0.1:$port/"
        start_nbdkit "$name" -i 127.0.0.1 -p "$port" "$@" > /dev/null && return 0
    done
    echo "# no free port found for nbdkit"
    return 1
}

# nbdkit 1.32 may abort when a client drops its connections with requests
# in flight (an assertion in raw_send_socket): a server whose client was
# killed or gave up is stopped and started again, never reused.
stop_server() {
    kill "$server_pid" 2>/dev/null
    reap "$server_pid"
}

# killed_mid_stream OPTION...: the tool, with OPTION..., writes $uri's
# image into a pipe whose reader takes one byte, kills the server
# (server_pid) and then drains the pipe: status 1, one line with the
# offset, a short stream.  The caller hides bash's report of the kill.
killed_mid_stream() {
    local full status
    full=$("$Q2S" --measure "$@" "$uri") || return 1
    timeout 60 "$Q2S" "$@" "$uri" 2> killed.err |
        { head -c 1 > killed.out; kill -KILL "$server_pid"; cat >> killed.out; }
    status=${PIPESTATUS[0]}
    echo "status $status, $(wc -c < killed.out) of $full bytes"; cat killed.err
    [ "$status" = 1 ] && [ "$(wc -l < killed.err)" = 1 ] &&
        grep -q '^qcow2-to-stdout: .*offset [0-9]' killed.err &&
        [ "$(wc -c < killed.out)" -lt "$full" ]
}

have_plugin() { nbdkit "$1" --dump-plugin > /dev/null 2>&1; }
have_filter() { nbdkit --filter="$1" null --dump-plugin > /dev/null 2>&1; }
