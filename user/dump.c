/* Text form of ring records (see dump.h). */
#include "dump.h"

#include "flow.h"

static size_t escape_one(uint8_t b, char tmp[5])
{
	switch (b) {
	case '\r': tmp[0] = '\\'; tmp[1] = 'r'; return 2;
	case '\n': tmp[0] = '\\'; tmp[1] = 'n'; return 2;
	case '\t': tmp[0] = '\\'; tmp[1] = 't'; return 2;
	case '\\': tmp[0] = '\\'; tmp[1] = '\\'; return 2;
	default:
		break;
	}
	if (b >= 0x20 && b <= 0x7e) {
		tmp[0] = (char)b;
		return 1;
	}
	static const char hex[] = "0123456789abcdef";
	tmp[0] = '\\';
	tmp[1] = 'x';
	tmp[2] = hex[b >> 4];
	tmp[3] = hex[b & 0xf];
	return 4;
}

size_t dump_escape(const uint8_t *data, size_t len, char *out, size_t outlen)
{
	size_t need = 0, used = 0;
	for (size_t i = 0; i < len; i++) {
		char tmp[5];
		size_t n = escape_one(data[i], tmp);
		/* Only whole escapes go out, so a cut never splits "\x0d". */
		if (outlen && used == need && used + n < outlen) {
			for (size_t j = 0; j < n; j++)
				out[used++] = tmp[j];
		}
		need += n;
	}
	if (outlen)
		out[used] = '\0';
	return need;
}

static void flags_str(uint8_t flags, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", flags & RW_RF_FIN ? " FIN" : "",
		 flags & RW_RF_RST ? " RST" : "", flags & RW_RF_TRUNCATED ? " TRUNCATED" : "",
		 flags & RW_RF_BODY_TAIL ? " BODY_TAIL" : "",
		 flags & RW_RF_MIDSTREAM ? " MIDSTREAM" : "");
}

static void dump_body(FILE *out, const struct rw_record_hdr *hdr, const uint8_t *data)
{
	char flow[FLOW_STRLEN];
	char flags[64];
	flow_key_str(&hdr->flow, flow, sizeof(flow));
	flags_str(hdr->flags, flags, sizeof(flags));

	switch (hdr->kind) {
	case RW_REC_FLOW_START:
		fprintf(out, "%s flow start isn=%u%s\n", flow, hdr->seq, flags);
		return;
	case RW_REC_FLOW_END:
		fprintf(out, "%s flow end%s\n", flow, flags);
		return;
	default:
		break;
	}
	/* Worst case 4 output bytes per input byte. */
	char text[RW_MAX_PAYLOAD * 4 + 1];
	size_t len = hdr->len <= RW_MAX_PAYLOAD ? hdr->len : RW_MAX_PAYLOAD;
	dump_escape(data, len, text, sizeof(text));
	const char *who = hdr->source == RW_SRC_TLS ? "C(tls)" : "C";
	if (hdr->flags & (RW_RF_BODY_TAIL | RW_RF_TRUNCATED | RW_RF_MIDSTREAM) || hdr->skipped)
		fprintf(out, "%s %s[skipped %u%s]: %s\n", flow, who, hdr->skipped, flags, text);
	else
		fprintf(out, "%s %s: %s\n", flow, who, text);
}

void dump_record(FILE *out, const struct rw_record_hdr *hdr, const uint8_t *data)
{
	dump_body(out, hdr, data);
}

void dump_record_verbose(FILE *out, const struct rw_record_hdr *hdr, const uint8_t *data)
{
	fprintf(out, "[ts=%llu seq=%u len=%u skipped=%u phase=%u pid=%u] ",
		(unsigned long long)hdr->ts_ns, hdr->seq, hdr->len, hdr->skipped, hdr->phase,
		hdr->pid);
	dump_body(out, hdr, data);
}
