#!/usr/bin/env bash
# A Postfix relay and two remote mail exchangers in network namespaces: the
# deployment rcptwall is for, small enough for a test.
#
#   scripts/testbed.sh up     [DIR]   build it (DIR: state, config, queue, logs)
#   scripts/testbed.sh down   [DIR]   stop everything, delete the namespaces
#   scripts/testbed.sh status [DIR]   what is running, the queue, the sinks
#   scripts/testbed.sh send   DIR RCPT...         submit one message (sendmail)
#   scripts/testbed.sh queue  DIR                 postqueue -p of the relay
#   scripts/testbed.sh pids   DIR                 processes of the bed (none when down)
#   scripts/testbed.sh exec   DIR relay|mxa|mxb CMD...   run CMD in a namespace
#
# Postfix's own tools must run inside the relay namespace (they check that
# inet_interfaces exist): ip netns exec $TB_NS_RELAY postqueue -c $TB_PF_CONFIG -p
#
# DIR defaults to $TB_DIR or /tmp/rw-testbed. `up` writes DIR/testbed.env
# (shell variables TB_*: namespace names, addresses, Postfix paths, sink
# stores); tests source it.
#
# Topology (namespaces are rw-tb-<id>-<role>, <id> random per `up`):
#
#   relay  eth0 198.51.100.10  2001:db8:25::10   Postfix, rcptwall goes here
#     |
#   wan    br0 (a bridge; the "internet")
#     |                                  |
#   mxa  eth0 198.51.100.21 ::21       mxb  eth0 198.51.100.22 ::22
#   sink for the real domains          sink for the lookalikes
#
# Routing is by Postfix transport_maps (texthash: a plain file, no postmap,
# no DNS): army.mil, navy.mil (over IPv6) and example.net on exchanger A or B
# as listed in DIR/postfix/etc/transport; the lookalikes army.ml, navy.ml
# (IPv6), gmial.com and army.mil.ml go to exchanger B. example.net also goes
# to B: a legitimate domain sharing the lookalike's MX, as on a real mail
# provider.
#
# Postfix is a separate instance (postfix -c DIR/postfix/etc) with its own
# queue under DIR; the machine's /etc/postfix and any system Postfix are
# never touched. Tunables (environment, read by `up`):
#   TB_MIN_BACKOFF (default 30s), TB_MAX_BACKOFF (60s), TB_QUEUE_RUN_DELAY
#   (30s): Postfix retry timers; TB_SMTP_TLS_LEVEL (none): the relay's
#   smtp_tls_security_level (the sinks offer STARTTLS with a self-signed
#   certificate made at `up`); TB_MX_RTT_MS (0): the exchangers answer
#   this many milliseconds after the relay's bytes arrive, standing in for
#   the round trip to a remote server (veth between namespaces has none).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
SINK=$REPO/tests/lib/smtp_sink.py

die() { echo "testbed: $*" >&2; exit 1; }
note() { echo "testbed: $*" >&2; }

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-2}"
}

# ---- state -------------------------------------------------------------------

state_dir() { # DIR argument or default, made absolute
	local d=${1:-${TB_DIR:-/tmp/rw-testbed}}
	[[ $d == /* ]] || d=$PWD/$d
	echo "${d%/}"
}

write_env() { # DIR ID
	local dir=$1 id=$2
	cat >"$dir/testbed.env" <<EOF
# Written by scripts/testbed.sh up; sourced by tests and by down/status.
TB_DIR=$dir
TB_ID=$id
TB_NS_RELAY=rw-tb-$id-relay
TB_NS_WAN=rw-tb-$id-wan
TB_NS_MXA=rw-tb-$id-mxa
TB_NS_MXB=rw-tb-$id-mxb
TB_RELAY_IF=eth0
TB_RELAY_IP4=198.51.100.10
TB_RELAY_IP6=2001:db8:25::10
TB_MXA_IP4=198.51.100.21
TB_MXA_IP6=2001:db8:25::21
TB_MXB_IP4=198.51.100.22
TB_MXB_IP6=2001:db8:25::22
TB_PF_CONFIG=$dir/postfix/etc
TB_PF_QUEUE=$dir/postfix/spool
TB_PF_LOG=$dir/postfix/maillog
TB_SINK_A=$dir/mxa
TB_SINK_B=$dir/mxb
TB_TLS_CERT=$dir/tls/cert.pem
TB_TLS_KEY=$dir/tls/key.pem
EOF
}

load_env() { # DIR
	[ -f "$1/testbed.env" ] || die "no test bed in $1 (no testbed.env; run: $0 up $1)"
	# shellcheck source=/dev/null
	. "$1/testbed.env"
}

ns_exists() { [ -e "/run/netns/$1" ]; }

# ---- up ----------------------------------------------------------------------

make_namespaces() {
	local ns
	for ns in "$TB_NS_WAN" "$TB_NS_RELAY" "$TB_NS_MXA" "$TB_NS_MXB"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip -n "$TB_NS_WAN" link add br0 type bridge
	ip -n "$TB_NS_WAN" link set br0 up
	attach_host "$TB_NS_RELAY" relay "$TB_RELAY_IP4" "$TB_RELAY_IP6"
	attach_host "$TB_NS_MXA" mxa "$TB_MXA_IP4" "$TB_MXA_IP6"
	attach_host "$TB_NS_MXB" mxb "$TB_MXB_IP4" "$TB_MXB_IP6"
}

attach_host() { # NS ROLE IP4 IP6: a veth from the host's eth0 to a bridge port
	local ns=$1 role=$2 ip4=$3 ip6=$4
	ip -n "$TB_NS_WAN" link add "p-$role" type veth peer name eth0 netns "$ns"
	ip -n "$TB_NS_WAN" link set "p-$role" master br0 up
	ip -n "$ns" addr add "$ip4/24" dev eth0
	# nodad: the address is usable at once, no duplicate detection wait.
	ip -n "$ns" addr add "$ip6/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
}

make_tls_cert() {
	mkdir -p "$TB_DIR/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$TB_TLS_KEY" -out "$TB_TLS_CERT" -days 2 \
		-subj "/CN=mx.rw-tb.test" >/dev/null 2>&1 || die "openssl: cannot make a test certificate"
}

start_sink() { # NS ROLE IP4 IP6
	local ns=$1 role=$2 store=$TB_DIR/$2
	mkdir -p "$store"
	ip netns exec "$ns" "$PY" "$SINK" --listen "$3:25" --listen "[$4]:25" \
		--store "$store" --hostname "$role.rw-tb.test" \
		--tls-cert "$TB_TLS_CERT" --tls-key "$TB_TLS_KEY" \
		--reply-delay "${TB_MX_RTT_MS:-0}e-3" \
		--ready-file "$TB_DIR/$role.ready" >"$TB_DIR/$role.log" 2>&1 </dev/null &
}

wait_for() { # DESCRIPTION COMMAND...: bounded wait for a readiness condition
	local what=$1 i; shift
	for i in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	die "$what: not ready after 10 s"
}

write_postfix_config() {
	local etc=$TB_PF_CONFIG
	mkdir -p "$etc" "$TB_PF_QUEUE" "$TB_DIR/postfix/data"
	# master takes its lock there after dropping root.
	chown postfix:postfix "$TB_DIR/postfix/data"
	chmod 700 "$TB_DIR/postfix/data"
	cat >"$etc/main.cf" <<EOF
# rcptwall test bed relay: a Postfix instance of its own (postfix -c $etc).
compatibility_level = 3.6
queue_directory = $TB_PF_QUEUE
data_directory = $TB_DIR/postfix/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.rw-tb.test
mydomain = rw-tb.test
myorigin = \$myhostname
# A pure relay: nothing is delivered locally.
mydestination =
relayhost =
relay_domains =
local_recipient_maps =
local_transport = error:no local delivery on the test relay
alias_maps =
alias_database =
biff = no
inet_interfaces = $TB_RELAY_IP4, [$TB_RELAY_IP6], 127.0.0.1
inet_protocols = ipv4, ipv6
mynetworks = 127.0.0.0/8 [::1]/128 198.51.100.0/24 [2001:db8:25::]/64
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# No DNS in the test bed: no client name lookups, next hops are addresses.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
transport_maps = texthash:$etc/transport
# Unknown destinations stay queued (deferred) with a reason, never bounce.
default_transport = retry:no route for this domain in the rcptwall test bed
smtp_tls_security_level = ${TB_SMTP_TLS_LEVEL:-none}
smtp_tls_CAfile = $TB_TLS_CERT
# Short timers so a test sees retries; see scripts/testbed.sh.
minimal_backoff_time = ${TB_MIN_BACKOFF:-30s}
maximal_backoff_time = ${TB_MAX_BACKOFF:-60s}
queue_run_delay = ${TB_QUEUE_RUN_DELAY:-30s}
# A blocked connection is a "lost connection" to Postfix, which by default
# then suspends the whole next hop ("delivery temporarily suspended") until
# minimal_backoff_time. Tests want every message tried on its own, so the
# lookalike's MX is never declared dead here.
smtp_destination_concurrency_failed_cohort_limit = 1000000
# Logs to a file through postlogd: no syslog needed.
maillog_file = $TB_PF_LOG
maillog_file_prefixes = $TB_DIR
EOF
	# chroot off everywhere: the instance lives in a temporary folder.
	cat >"$etc/master.cf" <<'EOF'
# service type  private unpriv  chroot  wakeup  maxproc command
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	cat >"$etc/transport" <<EOF
# domain        transport:[next hop]   (texthash: read as is, no postmap)
army.mil        smtp:[$TB_MXA_IP4]
navy.mil        smtp:[ipv6:$TB_MXA_IP6]
example.net     smtp:[$TB_MXB_IP4]
army.ml         smtp:[$TB_MXB_IP4]
navy.ml         smtp:[ipv6:$TB_MXB_IP6]
gmial.com       smtp:[$TB_MXB_IP4]
army.mil.ml     smtp:[$TB_MXB_IP4]
EOF
}

postfix_listening() {
	[ -n "$(ip netns exec "$TB_NS_RELAY" ss -Hltn "sport = :25" 2>/dev/null)" ]
}

start_postfix() {
	if [ -f /var/spool/postfix/pid/master.pid ] &&
		kill -0 "$(tr -dc 0-9 </var/spool/postfix/pid/master.pid)" 2>/dev/null; then
		note "a system Postfix is running; the test bed's instance is separate and leaves it alone"
	fi
	# `start` runs the instance's own checks (queue and data directories
	# made and owned right); its messages go to maillog_file.
	ip netns exec "$TB_NS_RELAY" postfix -c "$TB_PF_CONFIG" start >"$TB_DIR/postfix/start.log" 2>&1 ||
		{ tail -n 20 "$TB_PF_LOG" >&2; die "postfix start failed (log: $TB_PF_LOG)"; }
	wait_for "postfix smtpd on $TB_RELAY_IP4:25" postfix_listening
}

cmd_up() {
	local dir=$1 id
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	command -v postfix >/dev/null || die "postfix is not installed (scripts/install-deps.sh)"
	[ -x "$PY" ] || die "$PY is missing"
	if [ -f "$dir/testbed.env" ]; then
		load_env "$dir"
		ns_exists "$TB_NS_RELAY" && die "a test bed is already up in $dir (down it first)"
	fi
	mkdir -p "$dir"
	# Postfix daemons reach their data and log files after dropping root.
	chmod 755 "$dir"
	id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
	write_env "$dir" "$id"
	load_env "$dir"
	# A failure half way leaves nothing behind.
	trap 'rc=$?; [ $rc -eq 0 ] || { note "up failed; tearing down"; cmd_down "$dir" >&2 || true; }' EXIT
	make_namespaces
	make_tls_cert
	write_postfix_config
	start_sink "$TB_NS_MXA" mxa "$TB_MXA_IP4" "$TB_MXA_IP6"
	start_sink "$TB_NS_MXB" mxb "$TB_MXB_IP4" "$TB_MXB_IP6"
	start_postfix
	wait_for "sink mxa" test -f "$dir/mxa.ready"
	wait_for "sink mxb" test -f "$dir/mxb.ready"
	trap - EXIT
	echo "testbed: up in $dir (relay $TB_NS_RELAY, interface $TB_RELAY_IF)"
}

# ---- down --------------------------------------------------------------------

kill_namespace_processes() { # NS: every process left in it, by pid
	local ns=$1 pids i
	for i in $(seq 50); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[ -z "$pids" ] && return 0
		# shellcheck disable=SC2086
		if [ "$i" -lt 30 ]; then kill -TERM $pids 2>/dev/null || true
		else kill -KILL $pids 2>/dev/null || true; fi
		sleep 0.1
	done
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	[ -z "$pids" ] || { note "processes left in $ns: $pids"; return 1; }
}

# Processes that belong to the bed in DIR wherever they run: Postfix daemons
# work in their queue directory (their command lines do not name the
# instance), the sinks and helpers name DIR in their arguments.
bed_pids() { # DIR
	local dir=$1 f p
	{
		find /proc -mindepth 2 -maxdepth 2 -name cwd \( -lname "$dir" -o -lname "$dir/*" \) 2>/dev/null || true
		grep -lsF -- "$dir/" /proc/[0-9]*/cmdline 2>/dev/null || true
	} | while IFS= read -r f; do
		p=${f#/proc/}
		p=${p%%/*}
		# Not this script, nor the grep that read the cmdlines.
		[ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] || ! [ -e "/proc/$p" ] || echo "$p"
	done | sort -un | tr '\n' ' '
	return 0
}

cmd_down() {
	local dir=$1 ns status=0
	load_env "$dir"
	if ns_exists "$TB_NS_RELAY" && [ -f "$TB_PF_CONFIG/main.cf" ]; then
		ip netns exec "$TB_NS_RELAY" postfix -c "$TB_PF_CONFIG" stop >/dev/null 2>&1 || true
	fi
	for ns in "$TB_NS_RELAY" "$TB_NS_MXA" "$TB_NS_MXB" "$TB_NS_WAN"; do
		ns_exists "$ns" || continue
		kill_namespace_processes "$ns" || status=1
		ip netns del "$ns" || status=1
	done
	rm -f "$dir/mxa.ready" "$dir/mxb.ready"
	local left
	left=$(bed_pids "$dir")
	if [ -n "$left" ]; then
		note "processes of the test bed still running: $left"
		status=1
	fi
	[ "$status" -eq 0 ] && echo "testbed: down ($dir)"
	return "$status"
}

# ---- status, send, queue, exec ---------------------------------------------------

sink_summary() { # ROLE
	local log=$TB_DIR/$1/log.jsonl
	local pid="-"
	[ -f "$TB_DIR/$1.ready" ] && pid=$(cat "$TB_DIR/$1.ready")
	printf '  %-4s pid %-7s connections %-4s messages %s\n' "$1" "$pid" \
		"$(grep -c '"event": "connect"' "$log" 2>/dev/null || true)" \
		"$(grep -c '"event": "message"' "$log" 2>/dev/null || true)"
}

cmd_status() {
	local dir=$1 ns
	load_env "$dir"
	echo "test bed $TB_ID in $dir"
	for ns in "$TB_NS_RELAY" "$TB_NS_WAN" "$TB_NS_MXA" "$TB_NS_MXB"; do
		if ns_exists "$ns"; then
			printf '  %-24s up, %s processes\n' "$ns" "$(ip netns pids "$ns" | wc -l)"
		else
			printf '  %-24s absent\n' "$ns"
		fi
	done
	ns_exists "$TB_NS_RELAY" || return 0
	echo "postfix:"
	if ip netns exec "$TB_NS_RELAY" postfix -c "$TB_PF_CONFIG" status 2>/dev/null; then
		echo "  running (master pid $(tr -dc 0-9 <"$TB_PF_QUEUE/pid/master.pid"))"
	else
		echo "  not running"
	fi
	echo "  queue: $(ip netns exec "$TB_NS_RELAY" postqueue -c "$TB_PF_CONFIG" -p 2>&1 | tail -n 1)"
	echo "sinks:"
	sink_summary mxa
	sink_summary mxb
	echo "rcptwall on $TB_RELAY_IF:"
	echo "  tc egress filters: $(ip netns exec "$TB_NS_RELAY" tc filter show dev "$TB_RELAY_IF" egress 2>/dev/null | grep -c "bpf.*handle" || true)"
	if ip netns exec "$TB_NS_RELAY" nft list table inet rcptwall >/dev/null 2>&1; then
		echo "  nft table inet rcptwall: present"
	else
		echo "  nft table inet rcptwall: absent"
	fi
}

cmd_send() { # DIR RCPT...: one message, body tagged so it can be found again
	local dir=$1; shift
	[ $# -gt 0 ] || die "send: give at least one recipient"
	load_env "$dir"
	local token
	token="tb-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	{
		printf 'From: sender@relay.rw-tb.test\n'
		printf 'To: %s\n' "$(IFS=,; echo "$*")"
		printf 'Subject: test bed message %s\n\n' "$token"
		printf 'Body of %s.\n' "$token"
	} | ip netns exec "$TB_NS_RELAY" sendmail -C "$TB_PF_CONFIG" -f sender@relay.rw-tb.test -- "$@"
	echo "$token"
}

cmd_exec() { # DIR ROLE CMD...
	local dir=$1 role=${2:-}; shift 2 || usage
	load_env "$dir"
	case $role in
	relay) exec ip netns exec "$TB_NS_RELAY" "$@" ;;
	mxa) exec ip netns exec "$TB_NS_MXA" "$@" ;;
	mxb) exec ip netns exec "$TB_NS_MXB" "$@" ;;
	wan) exec ip netns exec "$TB_NS_WAN" "$@" ;;
	*) die "exec: role is relay, mxa, mxb or wan" ;;
	esac
}

main() {
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	case $cmd in
	up) cmd_up "$(state_dir "${1:-}")" ;;
	down) cmd_down "$(state_dir "${1:-}")" ;;
	status) cmd_status "$(state_dir "${1:-}")" ;;
	send) [ $# -ge 2 ] || usage; local d; d=$(state_dir "$1"); shift; cmd_send "$d" "$@" ;;
	pids) bed_pids "$(state_dir "${1:-}")"; echo ;;
	queue) load_env "$(state_dir "${1:-}")"
		ip netns exec "$TB_NS_RELAY" postqueue -c "$TB_PF_CONFIG" -p ;;
	exec) [ $# -ge 3 ] || usage; local d; d=$(state_dir "$1"); shift; cmd_exec "$d" "$@" ;;
	-h | --help | help) usage 0 ;;
	*) usage ;;
	esac
}

main "$@"
