/*
 * The embedded default policy, used for a list not given on the command
 * line. Documented in README.md ("Policy and lookalike detection"); keep
 * the two in step.
 *
 * Besides the whole .mil and .gov suffixes: the most used mail providers,
 * and the country domains those providers really use (yahoo.fr, gmx.at,
 * ...). The latter matter for false positives: a provider's own country
 * domain would otherwise be a "tld-swap" or "protected-prefix" of its .com
 * (yahoo.com.br), and protected entries never flag each other.
 */
#include <stddef.h>

#include "policy.h"

const char *const policy_default_protect[] = {
	/* whole suffixes: every registrable domain under them */
	".mil", ".gov",
	/* Google */
	"gmail.com", "googlemail.com",
	/* Microsoft */
	"outlook.com", "hotmail.com", "live.com", "msn.com",
	"outlook.fr", "outlook.de", "hotmail.co.uk", "hotmail.fr", "hotmail.de",
	"hotmail.it", "hotmail.es", "live.co.uk", "live.fr", "live.de",
	/* Yahoo / AOL */
	"yahoo.com", "ymail.com", "rocketmail.com", "aol.com",
	"yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.it", "yahoo.es", "yahoo.ca",
	"yahoo.co.jp", "yahoo.co.in", "yahoo.com.br", "yahoo.com.au", "yahoo.com.ar",
	/* Apple */
	"icloud.com", "me.com", "mac.com",
	/* Proton */
	"protonmail.com", "protonmail.ch", "proton.me",
	/* United Internet */
	"gmx.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de", "mail.com",
	/* Yandex, Mail.Ru */
	"yandex.ru", "yandex.com", "yandex.net", "mail.ru",
	/* independent providers */
	"zoho.com", "zohomail.com", "fastmail.com", "fastmail.fm",
	"tutanota.com", "tutanota.de", "tuta.io",
	/* Asia */
	"qq.com", "163.com", "126.com", "naver.com", "daum.net", "rediffmail.com",
	/* Europe: ISPs and national providers */
	"orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr",
	"t-online.de", "freenet.de", "libero.it", "seznam.cz", "interia.pl",
	"btinternet.com",
	/* North America: ISPs */
	"comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net",
	NULL,
};

const char *const policy_default_allow[] = {NULL};
const char *const policy_default_block[] = {NULL};
