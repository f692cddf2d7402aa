#!/bin/busybox sh
# A lockstep SMTP client in POSIX sh over `busybox nc` (the guest has no
# swaks): sends one message to RCPT at HOST port 25 and checks every reply
# code, so a server that never answered makes the test fail here rather than
# in the capture assertion.
#
#   smtp_client.sh HOST RCPT WORKDIR [PORT]
set -u
host=$1 rcpt=$2 work=$3 port=${4:-25}
cr=$(printf '\r')

mkfifo "$work/to-server" "$work/from-server" || exit 1
busybox nc "$host" "$port" <"$work/to-server" >"$work/from-server" &
nc_pid=$!
exec 3>"$work/to-server" 4<"$work/from-server"

fail() { echo "smtp_client: $*" >&2; exec 3>&-; kill "$nc_pid" 2>/dev/null; exit 1; }

# Reads one reply (all its continuation lines) and checks its code.
expect() { # CODE
	while :; do
		IFS= read -r -t 20 reply <&4 || fail "no reply from $host (wanted $1)"
		reply=${reply%"$cr"}
		echo "S: $reply"
		case $reply in
		"$1-"*) continue ;;
		"$1 "*|"$1") return 0 ;;
		*) fail "wanted $1, got: $reply" ;;
		esac
	done
}

send() { echo "C: $1"; printf '%s\r\n' "$1" >&3; }

expect 220
send "EHLO client.vmtest.example"; expect 250
send "MAIL FROM:<sender@client.vmtest.example>"; expect 250
send "RCPT TO:<$rcpt>"; expect 250
send "DATA"; expect 354
send "Subject: vmtest"; send ""; send "body line"; send "."; expect 250
send "QUIT"; expect 221
exec 3>&-
wait "$nc_pid"
exit 0
