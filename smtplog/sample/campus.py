"""The campus the simulation lives in: departments, people's names, the fixed senders, recipient
domains and how their servers behave, TLS peers, attackers' networks, daily rhythm, and the
relays' settings (queue lifetime, the content filter's address).

Plain data, no behaviour: the other modules draw from it.
"""

from __future__ import annotations

LIFETIME = 5 * 86400  # maximal_queue_lifetime

FILTER_RELAY = "127.0.0.1[127.0.0.1]:10024"

RCPT_COUNTS, RCPT_CUMULATIVE = (1, 2, 3, 4, 5), (60, 80, 90, 96, 100)  # nrcpt of most messages

WEBMAIL = ("webmail.nthu.edu.tw", "140.114.64.10")

HOUR_WEIGHTS = (
    0.25,
    0.15,
    0.1,
    0.1,
    0.1,
    0.2,
    0.4,
    0.9,
    1.6,
    2.3,
    2.4,
    2.2,
    1.3,
    1.8,
    2.3,
    2.3,
    2.1,
    1.6,
    1.0,
    0.9,
    1.0,
    1.0,
    0.8,
    0.5,
)

DEPTS = (
    "cs",
    "ee",
    "phys",
    "chem",
    "math",
    "me",
    "mse",
    "ls",
    "hss",
    "ess",
    "cc",
    "lib",
    "stat",
    "ieem",
    "che",
    "nes",
    "ipt",
    "oga",
    "adm",
    "ccxp",
)

SURNAMES = (
    "chen",
    "lin",
    "huang",
    "chang",
    "lee",
    "wang",
    "wu",
    "liu",
    "tsai",
    "yang",
    "hsu",
    "cheng",
    "hsieh",
    "kuo",
    "lai",
    "hung",
    "tseng",
    "chiu",
    "lu",
    "chou",
    "su",
    "yeh",
)

GIVEN = (
    "alice",
    "bob",
    "carol",
    "david",
    "emily",
    "frank",
    "grace",
    "henry",
    "ivy",
    "jack",
    "kevin",
    "linda",
    "mike",
    "nina",
    "oscar",
    "peggy",
    "ray",
    "sandy",
    "tom",
    "vicky",
    "wendy",
    "ming",
    "wei",
    "hao",
    "ting",
    "yu",
    "jun",
    "chia",
    "hsin",
    "yun",
)

SERVICES = ("noreply", "cron", "monitor", "nas", "gitlab", "moodle", "printer", "backup", "wiki")

# address, kind, SASL username (None: relayed without SASL), client name, client IP, sessions
# a day (whatever the cluster's volume; scaled down only for tiny samples).
# Kinds: sasl (submission port), webmail, server (campus host in mynetworks), forward (a campus
# mailbox host forwarding mail of an off-campus sender). Their bare logins all succeed on day 1.
FIXED_SENDERS = (
    ("alice@cs.nthu.edu.tw", "sasl", "alice", "unknown", "140.114.89.41", 6),
    ("noreply@nthu.edu.tw", "server", None, "ccxp.nthu.edu.tw", "140.114.64.20", 25),
    (
        "lab-server@phys.nthu.edu.tw",
        "server",
        None,
        "lab-server.phys.nthu.edu.tw",
        "140.114.81.22",
        8,
    ),
    (
        "bob.chen@ee.nthu.edu.tw",
        "sasl",
        "bob.chen@ee.nthu.edu.tw",
        "pc-bob.ee.nthu.edu.tw",
        "140.114.24.133",
        4,
    ),
    ("s110062001@m110.nthu.edu.tw", "webmail", "s110062001", *WEBMAIL, 3),
    ("wlin@math.nthu.edu.tw", "sasl", "wlin@math.nthu.edu.tw", "unknown", "140.114.31.77", 3),
    ("ta-ds@cs.nthu.edu.tw", "sasl", "ta-ds", "ta-server.cs.nthu.edu.tw", "140.114.89.200", 2),
    ("registrar@my.nthu.edu.tw", "webmail", "registrar@my.nthu.edu.tw", *WEBMAIL, 3),
    ("library@lib.nthu.edu.tw", "server", None, "mail.lib.nthu.edu.tw", "140.114.72.5", 6),
    ("yuting.huang@yahoo.com.tw", "forward", None, "mail.cs.nthu.edu.tw", "140.114.89.60", 2),
    ("chenwei1988@gmail.com", "forward", None, "mail.ee.nthu.edu.tw", "140.114.24.10", 1.5),
    ("noreply@conference-tw.org", "forward", None, "mail.phys.nthu.edu.tw", "140.114.81.10", 1),
)

MIXED_CASE = {"wlin@math.nthu.edu.tw": "WLin@math.nthu.edu.tw"}

# name, MX host, MX addresses, reply style, weight, mode (ok, dead, typo)
DOMAINS = (
    (
        "gmail.com",
        "gmail-smtp-in.l.google.com",
        ("142.250.157.26", "142.250.157.27", "74.125.204.26"),
        "gmail",
        30,
        "ok",
    ),
    ("gapp.nthu.edu.tw", "aspmx.l.google.com", ("142.251.8.26", "142.251.8.27"), "gmail", 6, "ok"),
    ("yahoo.com.tw", "mta7.am0.yahoodns.net", ("67.195.204.72", "98.136.96.75"), "yahoo", 6, "ok"),
    ("yahoo.com", "mta6.am0.yahoodns.net", ("67.195.204.79", "98.136.96.91"), "yahoo", 2, "ok"),
    (
        "outlook.com",
        "outlook-com.olc.protection.outlook.com",
        ("52.101.42.6", "52.101.11.18"),
        "outlook",
        4,
        "ok",
    ),
    (
        "hotmail.com",
        "hotmail-com.olc.protection.outlook.com",
        ("52.101.68.9", "52.101.73.2"),
        "outlook",
        4,
        "ok",
    ),
    ("ntu.edu.tw", "mx.ntu.edu.tw", ("140.112.2.36", "140.112.2.37"), "postfix", 3, "ok"),
    ("nycu.edu.tw", "mx1.nycu.edu.tw", ("140.113.6.9",), "postfix", 2, "ok"),
    ("ncku.edu.tw", "mail.ncku.edu.tw", ("140.116.2.40",), "exim", 1.5, "ok"),
    ("itri.org.tw", "mx.itri.org.tw", ("203.66.86.5",), "postfix", 1, "ok"),
    ("qq.com", "mx3.qq.com", ("183.47.101.192",), "qq", 1, "ok"),
    ("naver.com", "mx1.naver.com", ("125.209.238.100",), "generic", 0.5, "ok"),
    ("kyoto-u.ac.jp", "mx.kyoto-u.ac.jp", ("133.3.5.20",), "exim", 0.5, "ok"),
    ("oldlab-mail.com.tw", "mail.oldlab-mail.com.tw", ("203.69.112.45",), "postfix", 0.08, "dead"),
    ("ktv-travel.com.tw", "mx.ktv-travel.com.tw", ("61.219.36.7",), "generic", 0.04, "dead"),
    ("gmial.com", "", (), "none", 0.15, "typo"),
    ("yaho.com.tw", "", (), "none", 0.05, "typo"),
)

CAMPUS_WEIGHT = 22  # spread over the departments' mailbox hosts

TLS_TO = {
    "gmail": "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
    "server-signature ECDSA (P-256) server-digest SHA256",
    "outlook": "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
    "yahoo": "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 "
    "server-signature RSA-PSS (2048 bits) server-digest SHA256",
}

TLS_FROM = (
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
    "server-signature RSA-PSS (2048 bits) server-digest SHA256"
)

ATTACK_NETS = (
    "185.220.101",
    "45.144.212",
    "141.98.10",
    "193.32.162",
    "80.94.95",
    "222.162.115",
    "103.151.140",
    "5.188.206",
)

SPAM_FROM = (
    "sales@promo-deals.top",
    "info@bestprice-mail.xyz",
    "support@secure-verify.info",
    "newsletter@cheap-meds.ru",
    "admin@invoice-docs.click",
)

FAKE_ACCOUNTS = (
    "admin@nthu.edu.tw",
    "test@cs.nthu.edu.tw",
    "info@nthu.edu.tw",
    "webmaster@ee.nthu.edu.tw",
    "postmaster@nthu.edu.tw",
)
