/* method.c: method names, canonical header names and the reason-phrase table. */
#include "sip/sip.h"

#include <string.h>

static const char *const method_names[] = {
	[SIP_METHOD_OTHER] = "",   [SIP_INVITE] = "INVITE",       [SIP_ACK] = "ACK",
	[SIP_BYE] = "BYE",         [SIP_CANCEL] = "CANCEL",       [SIP_REGISTER] = "REGISTER",
	[SIP_OPTIONS] = "OPTIONS", [SIP_INFO] = "INFO",           [SIP_UPDATE] = "UPDATE",
	[SIP_PRACK] = "PRACK",     [SIP_SUBSCRIBE] = "SUBSCRIBE", [SIP_NOTIFY] = "NOTIFY",
	[SIP_REFER] = "REFER",     [SIP_MESSAGE] = "MESSAGE",     [SIP_PUBLISH] = "PUBLISH",
};

static bool meth_is(struct str s, enum sip_method m, size_t l)
{
	return s.l == l && memcmp(s.p, method_names[m], l) == 0;
}

enum sip_method sip_method_from_str(struct str s)
{
	/* One candidate (two at most) per first byte; the names are case-sensitive. */
	if (s.l < 3)
		return SIP_METHOD_OTHER;
	switch (s.p[0]) {
	case 'A':
		return meth_is(s, SIP_ACK, 3) ? SIP_ACK : SIP_METHOD_OTHER;
	case 'B':
		return meth_is(s, SIP_BYE, 3) ? SIP_BYE : SIP_METHOD_OTHER;
	case 'C':
		return meth_is(s, SIP_CANCEL, 6) ? SIP_CANCEL : SIP_METHOD_OTHER;
	case 'I':
		if (meth_is(s, SIP_INVITE, 6))
			return SIP_INVITE;
		return meth_is(s, SIP_INFO, 4) ? SIP_INFO : SIP_METHOD_OTHER;
	case 'M':
		return meth_is(s, SIP_MESSAGE, 7) ? SIP_MESSAGE : SIP_METHOD_OTHER;
	case 'N':
		return meth_is(s, SIP_NOTIFY, 6) ? SIP_NOTIFY : SIP_METHOD_OTHER;
	case 'O':
		return meth_is(s, SIP_OPTIONS, 7) ? SIP_OPTIONS : SIP_METHOD_OTHER;
	case 'P':
		if (meth_is(s, SIP_PRACK, 5))
			return SIP_PRACK;
		return meth_is(s, SIP_PUBLISH, 7) ? SIP_PUBLISH : SIP_METHOD_OTHER;
	case 'R':
		if (meth_is(s, SIP_REGISTER, 8))
			return SIP_REGISTER;
		return meth_is(s, SIP_REFER, 5) ? SIP_REFER : SIP_METHOD_OTHER;
	case 'S':
		return meth_is(s, SIP_SUBSCRIBE, 9) ? SIP_SUBSCRIBE : SIP_METHOD_OTHER;
	case 'U':
		return meth_is(s, SIP_UPDATE, 6) ? SIP_UPDATE : SIP_METHOD_OTHER;
	default:
		return SIP_METHOD_OTHER;
	}
}

const char *sip_method_name(enum sip_method m)
{
	if ((size_t)m >= sizeof method_names / sizeof method_names[0])
		return "";
	return method_names[m];
}

static const char *const hdr_names[SIP_HDR_COUNT] = {
	[SIP_HDR_OTHER] = "",
	[SIP_HDR_ACCEPT] = "Accept",
	[SIP_HDR_ALLOW] = "Allow",
	[SIP_HDR_AUTHORIZATION] = "Authorization",
	[SIP_HDR_CALL_ID] = "Call-ID",
	[SIP_HDR_CONTACT] = "Contact",
	[SIP_HDR_CONTENT_ENCODING] = "Content-Encoding",
	[SIP_HDR_CONTENT_LENGTH] = "Content-Length",
	[SIP_HDR_CONTENT_TYPE] = "Content-Type",
	[SIP_HDR_CSEQ] = "CSeq",
	[SIP_HDR_DATE] = "Date",
	[SIP_HDR_EXPIRES] = "Expires",
	[SIP_HDR_FROM] = "From",
	[SIP_HDR_MAX_FORWARDS] = "Max-Forwards",
	[SIP_HDR_MIN_EXPIRES] = "Min-Expires",
	[SIP_HDR_PATH] = "Path",
	[SIP_HDR_PROXY_AUTHENTICATE] = "Proxy-Authenticate",
	[SIP_HDR_PROXY_AUTHORIZATION] = "Proxy-Authorization",
	[SIP_HDR_PROXY_REQUIRE] = "Proxy-Require",
	[SIP_HDR_RECORD_ROUTE] = "Record-Route",
	[SIP_HDR_REQUIRE] = "Require",
	[SIP_HDR_ROUTE] = "Route",
	[SIP_HDR_SERVER] = "Server",
	[SIP_HDR_SUBJECT] = "Subject",
	[SIP_HDR_SUPPORTED] = "Supported",
	[SIP_HDR_TO] = "To",
	[SIP_HDR_UNSUPPORTED] = "Unsupported",
	[SIP_HDR_USER_AGENT] = "User-Agent",
	[SIP_HDR_VIA] = "Via",
	[SIP_HDR_WWW_AUTHENTICATE] = "WWW-Authenticate",
	[SIP_HDR_EVENT] = "Event",
	[SIP_HDR_REFER_TO] = "Refer-To",
	[SIP_HDR_ALLOW_EVENTS] = "Allow-Events",
	[SIP_HDR_P_ASSERTED_IDENTITY] = "P-Asserted-Identity",
	[SIP_HDR_P_PREFERRED_IDENTITY] = "P-Preferred-Identity",
	[SIP_HDR_REMOTE_PARTY_ID] = "Remote-Party-ID",
	[SIP_HDR_RETRY_AFTER] = "Retry-After",
};

const char *sip_hdr_name(enum sip_hdr_id id)
{
	if ((unsigned)id >= SIP_HDR_COUNT)
		return "";
	return hdr_names[id];
}

const char *sip_reason(unsigned status)
{
	switch (status) {
	case 100:
		return "Trying";
	case 180:
		return "Ringing";
	case 181:
		return "Call Is Being Forwarded";
	case 182:
		return "Queued";
	case 183:
		return "Session Progress";
	case 199:
		return "Early Dialog Terminated";
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 204:
		return "No Notification";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Moved Temporarily";
	case 305:
		return "Use Proxy";
	case 380:
		return "Alternative Service";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 410:
		return "Gone";
	case 412:
		return "Conditional Request Failed";
	case 413:
		return "Request Entity Too Large";
	case 414:
		return "Request-URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Unsupported URI Scheme";
	case 417:
		return "Unknown Resource-Priority";
	case 420:
		return "Bad Extension";
	case 421:
		return "Extension Required";
	case 422:
		return "Session Interval Too Small";
	case 423:
		return "Interval Too Brief";
	case 428:
		return "Use Identity Header";
	case 429:
		return "Provide Referrer Identity";
	case 430:
		return "Flow Failed";
	case 433:
		return "Anonymity Disallowed";
	case 436:
		return "Bad Identity-Info";
	case 437:
		return "Unsupported Certificate";
	case 438:
		return "Invalid Identity Header";
	case 439:
		return "First Hop Lacks Outbound Support";
	case 440:
		return "Max-Breadth Exceeded";
	case 469:
		return "Bad Info Package";
	case 470:
		return "Consent Needed";
	case 480:
		return "Temporarily Unavailable";
	case 481:
		return "Call/Transaction Does Not Exist";
	case 482:
		return "Loop Detected";
	case 483:
		return "Too Many Hops";
	case 484:
		return "Address Incomplete";
	case 485:
		return "Ambiguous";
	case 486:
		return "Busy Here";
	case 487:
		return "Request Terminated";
	case 488:
		return "Not Acceptable Here";
	case 489:
		return "Bad Event";
	case 491:
		return "Request Pending";
	case 493:
		return "Undecipherable";
	case 494:
		return "Security Agreement Required";
	case 500:
		return "Server Internal Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Server Time-out";
	case 505:
		return "Version Not Supported";
	case 513:
		return "Message Too Large";
	case 555:
		return "Push Notification Service Not Supported";
	case 580:
		return "Precondition Failure";
	case 600:
		return "Busy Everywhere";
	case 603:
		return "Decline";
	case 604:
		return "Does Not Exist Anywhere";
	case 606:
		return "Not Acceptable";
	case 607:
		return "Unwanted";
	case 608:
		return "Rejected";
	default:
		return "Unknown";
	}
}
