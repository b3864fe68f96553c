#!/usr/bin/env perl
# Meta set (ms): return flags (b c k O s), client flags (F), TTL (T), explicit CAS (E),
# compare-and-set (C) and invalidation (I), the M modes (set, add, append, prepend, replace),
# append/prepend autovivify (N), quiet mode, and the error replies including how much of the
# data block is swallowed after each, byte for byte as C 1.6.45.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;


my $server = new_memcached();
my $sock = $server->sock;
is(mem_meta_batch($sock, "debugtime p\r\n"), "OK\r\n", "pause the clock");

# --- plain sets and the return flags ------------------------------------------
# CAS values come from one counter; the first store of a fresh server gets 2 and every
# ms draws a value, whether it stores or not (unless E supplies one).
is(mem_meta_batch($sock, "ms a 3\r\nabc\r\n"), "HD\r\n", "set");
is(mem_meta_batch($sock, "mg a v c f t\r\n"), "VA 3 c2 f0 t-1\r\nabc\r\n", "stored with flags 0, no TTL");
is(mem_meta_batch($sock, "ms a 3 c s k O9\r\nxyz\r\n"), "HD c3 s3 ka O9\r\n", "c s k O in request order");
is(mem_meta_batch($sock, "ms a 3 O9 k s c\r\nxyz\r\n"), "HD O9 ka s3 c4\r\n", "reverse order");
is(mem_meta_batch($sock, "ms a 3 q\r\nabc\r\n"), "", "q hides HD");
is(mem_meta_batch($sock, "ms a 3 q c k O1\r\nabc\r\n"), "", "and its flags");
is(mem_meta_batch($sock, "mg a c\r\n"), "HD c6\r\n", "both quiet sets happened");
is(mem_meta_batch($sock, "ms a 3 v t h l u f x P L\r\nabc\r\n"), "HD\r\n", "flags of other commands are accepted and ignored");
is(mem_meta_batch($sock, "ms z 0\r\n\r\nmg z v s\r\n"), "HD\r\nVA 0 s0\r\n\r\n", "an empty value");
is(mem_meta_batch($sock, "ms sp 5\r\na b\r\n\r\nmg sp v\r\n"), "HD\r\nVA 5\r\na b\r\n\r\n",
    "the data block may contain spaces and line ends");
my $o31 = 'o' x 31;
is(mem_meta_batch($sock, "ms a 1 O$o31\r\n1\r\n"), "HD O$o31\r\n", "31 byte opaque");
is(mem_meta_batch($sock, "ms a 1 Ox$o31\r\n2\r\nmg a v\r\n"), "CLIENT_ERROR opaque token too long\r\nVA 1\r\n1\r\n",
    "a longer opaque: error, value swallowed and not stored");

# --- F and T -----------------------------------------------------------------
is(mem_meta_batch($sock, "ms f 1 F123 T100\r\n1\r\nmg f f t\r\n"), "HD\r\nHD f123 t100\r\n", "F and T");
is(mem_meta_batch($sock, "ms f 1 F4294967295 T0\r\n1\r\nmg f f t\r\n"), "HD\r\nHD f4294967295 t-1\r\n", "largest flags, T0");
is(mem_meta_batch($sock, "ms f 1 F4294967296\r\n1\r\nmg f f\r\n"), "CLIENT_ERROR bad command line format\r\nHD f4294967295\r\n",
    "flags over 32 bits: error, swallowed");
is(mem_meta_batch($sock, "ms f 1 Fabc\r\n1\r\n"), "CLIENT_ERROR bad command line format\r\n", "non-numeric flags");
is(mem_meta_batch($sock, "ms f 1 F-1\r\n1\r\n"), "CLIENT_ERROR bad command line format\r\n", "negative flags");
is(mem_meta_batch($sock, "ms f 1 F\r\n1\r\n"), "CLIENT_ERROR bad command line format\r\n", "F without a number");
is(mem_meta_batch($sock, "ms f 1 Tabc\r\n1\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "non-numeric TTL");
is(mem_meta_batch($sock, "ms f 1 T-1\r\n1\r\nmg f v\r\n"), "HD\r\nEN\r\n", "negative TTL: stored already expired");
is(mem_meta_batch($sock, "ms f 1 N30\r\n1\r\nmg f t\r\n"), "HD\r\nHD t-1\r\n", "N is ignored in set mode");

# --- E: explicit CAS; C: compare ------------------------------------------------
is(mem_meta_batch($sock, "ms e 3 E500 c\r\nabc\r\nmg e c\r\n"), "HD c500\r\nHD c500\r\n", "E sets the CAS");
is(mem_meta_batch($sock, "ms e 3 C500 E600 c\r\nabd\r\n"), "HD c600\r\n", "C matches, E gives the new CAS");
is(mem_meta_batch($sock, "ms e 3 C500 c\r\nabe\r\n"), "EX c0\r\n", "stale C: EX, c0");
is(mem_meta_batch($sock, "ms e 3 C500 q\r\nabe\r\n"), "EX\r\n", "q does not hide EX");
is(mem_meta_batch($sock, "mg e v c\r\n"), "VA 3 c600\r\nabd\r\n", "unchanged");
is(mem_meta_batch($sock, "ms e 3 C600 c k q\r\nabf\r\nmg e v c\r\n"), "VA 3 c18\r\nabf\r\n",
    "quiet CAS set; failed stores drew CAS values too");
is(mem_meta_batch($sock, "ms nx 3 C600 c\r\nabd\r\n"), "NF c0\r\n", "C on a missing key: NF");
is(mem_meta_batch($sock, "ms nx 3 C600 q\r\nabd\r\n"), "NF\r\n", "q does not hide NF");
is(mem_meta_batch($sock, "ms nx 3 C600 MR\r\nabd\r\n"), "NF\r\n", "replace with C on a missing key: NF");
is(mem_meta_batch($sock, "ms nx 3 C600 ME c\r\nabd\r\n"), "HD c22\r\n", "add ignores C");
is(mem_meta_batch($sock, "ms nx 3 C22 ME\r\nabd\r\n"), "NS\r\n", "add on an existing key: NS even with the right C");
is(mem_meta_batch($sock, "ms e 3 C18 MR c\r\nrep\r\n"), "HD c24\r\n", "replace with a matching C");
is(mem_meta_batch($sock, "ms e 3 C18446744073709551616\r\nrep\r\n"), "CLIENT_ERROR bad token in command line format\r\n",
    "C over 64 bits");
is(mem_meta_batch($sock, "ms e 3 Cx\r\nrep\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "non-numeric C");
is(mem_meta_batch($sock, "ms e 3 E\r\nrep\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "E without a number");

# --- I: invalidate ----------------------------------------------------------
is(mem_meta_batch($sock, "ms i 3 T100\r\nold\r\nmg i c\r\n"), "HD\r\nHD c25\r\n", "store i");
is(mem_meta_batch($sock, "ms i 3 I T5\r\nnew\r\nmg i v t\r\n"), "HD\r\nVA 3 t5\r\nnew\r\n", "I without C: a plain set");
is(mem_meta_batch($sock, "ms i 3 C26 I c T5\r\nmat\r\nmg i v t\r\n"), "HD c27\r\nVA 3 t5\r\nmat\r\n",
    "I with a matching C: a plain CAS set");
is(mem_meta_batch($sock, "ms i 3 C28 I c\r\nnew\r\n"), "EX c0\r\n", "I with a newer C: EX");
is(mem_meta_batch($sock, "ms i 3 C10 I c T100\r\nstl\r\n"), "HD c29\r\n", "I with an older C: stored");
is(mem_meta_batch($sock, "mg i v t c\r\n"), "VA 3 t5 c29 X W\r\nstl\r\n", "stale, and the old TTL is kept");
is(mem_meta_batch($sock, "ms i 3 C10 MA I\r\napp\r\n"), "EX\r\n", "I does not apply to append");
is(mem_meta_batch($sock, "ms i 3 C29 T50\r\nfix\r\nmg i v t\r\n"), "HD\r\nVA 3 t50\r\nfix\r\n", "a CAS match clears the stale mark");

# --- M modes ---------------------------------------------------------------
is(mem_meta_batch($sock, "ms m 3 ME c s k O1\r\nabc\r\n"), "HD c32 s3 km O1\r\n", "add a new key");
is(mem_meta_batch($sock, "ms m 3 ME c s k O1\r\nxyz\r\n"), "NS c0 s3 km O1\r\n", "add an existing key: NS");
is(mem_meta_batch($sock, "ms m 3 ME q\r\nxyz\r\n"), "NS\r\n", "q does not hide NS");
is(mem_meta_batch($sock, "ms m 2 MA s c\r\nde\r\n"), "HD s5 c35\r\n", "append: s is the new size");
is(mem_meta_batch($sock, "ms m 2 MP s c q\r\n<<\r\nmg m v c\r\n"), "VA 7 c36\r\n<<abcde\r\n", "quiet prepend");
is(mem_meta_batch($sock, "ms m 2 MA F9 T10\r\n!!\r\nmg m v f t\r\n"), "HD\r\nVA 9 f0 t-1\r\n<<abcde!!\r\n",
    "append keeps the item's flags and TTL");
is(mem_meta_batch($sock, "ms m 2 MA C37 c\r\n??\r\n"), "HD c38\r\n", "append with a matching C");
is(mem_meta_batch($sock, "ms m 2 MP C37 c\r\n??\r\n"), "EX c0\r\n", "prepend with a stale C");
is(mem_meta_batch($sock, "ms miss 2 MA s c\r\nde\r\n"), "NS s2 c0\r\n", "append to a missing key: NS");
is(mem_meta_batch($sock, "ms miss 2 MP\r\nde\r\n"), "NS\r\n", "prepend to a missing key");
is(mem_meta_batch($sock, "ms miss 2 MR k\r\nde\r\n"), "NS kmiss\r\n", "replace a missing key");
is(mem_meta_batch($sock, "ms m 3 MR s c T50 F3\r\nrep\r\nmg m v c t f\r\n"), "HD s3 c43\r\nVA 3 c43 t50 f3\r\nrep\r\n",
    "replace an existing key");
is(mem_meta_batch($sock, "ms m 3 MS\r\nset\r\nmg m v\r\n"), "HD\r\nVA 3\r\nset\r\n", "MS: set");
is(mem_meta_batch($sock, "ms m 3 MSfoo\r\nsfo\r\nmg m v\r\n"), "HD\r\nVA 3\r\nsfo\r\n", "only the first character of M counts");
is(mem_meta_batch($sock, "ms m 3 Ms\r\nlow\r\nmg m v\r\n"), "CLIENT_ERROR invalid mode for ms M token\r\nVA 3\r\nsfo\r\n",
    "modes are case sensitive; the value is swallowed");
is(mem_meta_batch($sock, "ms m 3 MX\r\nbad\r\n"), "CLIENT_ERROR invalid mode for ms M token\r\n", "unknown mode");
is(mem_meta_batch($sock, "ms m 3 M\r\nbad\r\n"), "CLIENT_ERROR invalid mode for ms M token\r\n", "M without a mode");
is(mem_meta_batch($sock, "ms m 3 MI\r\nbad\r\n"), "CLIENT_ERROR invalid mode for ms M token\r\n", "ma's modes are not ms modes");

# --- N: autovivify in append/prepend mode -------------------------------------------
is(mem_meta_batch($sock, "ms av 2 MA N30 s c\r\nzz\r\nmg av t v\r\n"), "HD s2 c46\r\nVA 2 t30\r\nzz\r\n",
    "append with N on a miss creates the item with N's TTL");
is(mem_meta_batch($sock, "ms av 2 MA N90 s T5\r\nyy\r\nmg av t v\r\n"), "HD s4\r\nVA 4 t30\r\nzzyy\r\n",
    "append with N on a hit appends and keeps the TTL");
is(mem_meta_batch($sock, "ms pv 2 MP N0 T100 s\r\n<<\r\nmg pv t v\r\n"), "HD s2\r\nVA 2 t-1\r\n<<\r\n",
    "prepend with N0: no expiry, T is not used");
is(mem_meta_batch($sock, "ms pv2 2 MP N30 F7 q\r\nqq\r\nmg pv2 f v\r\n"), "VA 2 f7\r\nqq\r\n",
    "a vivified item takes the F flags");
is(mem_meta_batch($sock, "ms av 2 MA Nx\r\nzz\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "bad N token");

# --- base64 keys --------------------------------------------------------------
is(mem_meta_batch($sock, "ms Zm9v 2 b k c\r\nhi\r\n"), "HD kZm9v b c50\r\n", "binary key: k prints base64 then b");
is(mem_meta_batch($sock, "mg foo v k\r\n"), "VA 2 kZm9v b\r\nhi\r\n", "the decoded key is foo");
is(mem_meta_batch($sock, "ms AAEC 1 b ME k\r\nx\r\nms AAEC 1 b ME k\r\ny\r\n"), "HD kAAEC b\r\nNS kAAEC b\r\n",
    "binary keys in add mode");
is(mem_meta_batch($sock, "ms a 3 b k\r\nabc\r\n"), "CLIENT_ERROR error decoding key\r\n", "bad base64: error, swallowed");
is(mem_meta_batch($sock, "ms Zm9v 2 b q\r\nzz\r\n"), "", "quiet binary set");

# --- data block errors --------------------------------------------------------
is(mem_meta_batch($sock, "ms d 2\r\nzzz\r\n"), "CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\n",
    "one byte too many: the \\n left over is read as a command line");
is(mem_meta_batch($sock, "ms d 2\r\nz\r\n\r\n"), "CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\n",
    "a line end inside the counted bytes");
is(mem_meta_batch($sock, "ms d 2 q\r\nzzz\r\n"), "CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\n",
    "bad data chunk ignores q");
is(mem_meta_batch($sock, "ms d 2\r\nzzabcde\r\n"), "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    "the rest of a bad block is read as a command");
is(mem_meta_batch($sock, "mg d v\r\n"), "EN\r\n", "nothing stored");
is(mem_meta_batch($sock, "ms a 3\r\nabc\r\nms d 2\r\nzzz\r\nmg a v\r\n"),
    "HD\r\nCLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\nVA 3\r\nabc\r\n",
    "a failed set does not remove the old value");

# --- command line errors -------------------------------------------------------
my $k250 = 'k' x 250;
my $k251 = 'k' x 251;
is(mem_meta_batch($sock, "ms $k250 2\r\nzz\r\nmg $k250 s\r\n"), "HD\r\nHD s2\r\n", "250 byte key");
is(mem_meta_batch($sock, "ms $k251 2\r\nzz\r\n"), "CLIENT_ERROR bad command line format\r\n",
    "251 byte key: error, data swallowed");
is(mem_meta_batch($sock, "ms x abc\r\nzz\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n",
    "non-numeric length: the data is not swallowed");
is(mem_meta_batch($sock, "ms x -1\r\nzz\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n", "negative length");
is(mem_meta_batch($sock, "ms x 2147483646\r\n"), "CLIENT_ERROR bad command line format\r\n", "length over INT_MAX - 2");
is(mem_meta_batch($sock, "ms x\r\n"), "CLIENT_ERROR bad command line format\r\n", "no length");
is(mem_meta_batch($sock, "ms\r\n"), "CLIENT_ERROR bad command line format\r\n", "no key");
is(mem_meta_batch($sock, "ms x 2 z\r\nzz\r\n"), "CLIENT_ERROR invalid flag\r\n", "invalid flag: error, swallowed");
is(mem_meta_batch($sock, "ms x 2 q z\r\nzz\r\n"), "CLIENT_ERROR invalid flag\r\n", "errors ignore q");
is(mem_meta_batch($sock, "ms x 2 c c\r\nzz\r\n"), "CLIENT_ERROR duplicate flag\r\n", "duplicate flag");
is(mem_meta_batch($sock, "ms x 2 O1 O2\r\nzz\r\n"), "CLIENT_ERROR duplicate flag\r\n", "duplicate O");
is(mem_meta_batch($sock, "ms x 2 " . join(' ', ('c') x 18) . "\r\nzz\r\n"), "CLIENT_ERROR options flags are too long\r\n",
    "more than 20 tokens");
is(mem_meta_batch($sock, "ms x 2 noreply\r\nzz\r\n"), "CLIENT_ERROR invalid flag\r\n",
    "the classic noreply token is not a meta flag");
is(mem_meta_batch($sock, "ms x +2\r\nzz\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n",
    "a length with a sign is not a number: the data is not swallowed");
is(mem_meta_batch($sock, "mg x v\r\n"), "EN\r\n", "none of them stored anything");

# --- too large ----------------------------------------------------------------
my $mb = 1024 * 1024;
my $huge = 'h' x $mb;
is(mem_meta_batch($sock, "ms big $mb O5 k q\r\n$huge\r\n"), "SERVER_ERROR object too large for cache\r\n",
    "a value over the item size limit: error (even with q), swallowed");
is(mem_meta_batch($sock, "ms big $mb b\r\n$huge\r\n"), "CLIENT_ERROR error decoding key\r\n",
    "key errors come first, the value is still swallowed");
my $nearly = 'n' x ($mb - 100);
is(mem_meta_batch($sock, "ms big " . length($nearly) . " s\r\n$nearly\r\n"), "HD s" . length($nearly) . "\r\n",
    "a large value that fits");
is(mem_meta_batch($sock, "ms big 2 MA s\r\nyy\r\n"), "HD s" . (length($nearly) + 2) . "\r\n", "append to it");
is(mem_meta_batch($sock, "ms big 200 MA s c\r\n" . ('y' x 200) . "\r\n"), "NS s200 c0\r\n",
    "an append that would exceed the limit: NS, s is the size sent");
is(mem_meta_batch($sock, "mg big s\r\n"), "HD s" . (length($nearly) + 2) . "\r\n", "unchanged");
is(mem_meta_batch($sock, "ms big 1\r\n1\r\nmg big s\r\n"), "HD\r\nHD s1\r\n", "replaced by a small value");
is(mem_meta_batch($sock, "ms big $mb\r\n$huge\r\nmg big v\r\n"), "SERVER_ERROR object too large for cache\r\nEN\r\n",
    "a too large set removes the old value");

done_testing();
