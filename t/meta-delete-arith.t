#!/usr/bin/env perl
# Meta delete (md: b C E I k O q T x) and meta arithmetic (ma: b C E N J D T M O q t c v k):
# status codes, quiet mode, stale marking and tombstones, autovivify, CAS handling, the
# in-place padding of shrinking numbers and the error replies, byte for byte as C 1.6.45.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;


# No background LRU threads: they take item references for a moment, and an incr that finds
# an extra reference builds a new item instead of rewriting the number in place (C then
# applies ma's T to the old copy), which would make the padding and TTL checks racy.
my $server = new_memcached("-o no_lru_crawler,no_lru_maintainer");
my $sock = $server->sock;
is(mem_meta_batch($sock, "debugtime p\r\n"), "OK\r\n", "pause the clock");

# ============================== md ==========================================
is(mem_meta_batch($sock, "ms a 3 T100\r\nabc\r\n"), "HD\r\n", "store a");
is(mem_meta_batch($sock, "md a\r\n"), "HD\r\n", "delete");
is(mem_meta_batch($sock, "mg a v\r\n"), "EN\r\n", "gone");
is(mem_meta_batch($sock, "md a\r\n"), "NF\r\n", "delete a missing key");
is(mem_meta_batch($sock, "md a q\r\n"), "NF\r\n", "q does not hide NF");
is(mem_meta_batch($sock, "md a k O5 q\r\n"), "NF ka O5\r\n", "NF echoes k and O");
is(mem_meta_batch($sock, "md a O5 k\r\n"), "NF O5 ka\r\n", "in request order");
is(mem_meta_batch($sock, "ms a 3\r\nabc\r\nmd a q k O1\r\nmg a\r\n"), "HD\r\nEN\r\n", "q hides HD");
is(mem_meta_batch($sock, "ms a 3\r\nabc\r\nmd a k O1\r\n"), "HD\r\nHD ka O1\r\n", "HD with k and O");

# --- C: compare ---------------------------------------------------------------
is(mem_meta_batch($sock, "ms a 3 T100\r\nabc\r\nmg a c\r\n"), "HD\r\nHD c5\r\n", "store a again");
is(mem_meta_batch($sock, "md a C99 k\r\n"), "EX ka\r\n", "wrong CAS: EX");
is(mem_meta_batch($sock, "md a C99 q\r\n"), "EX\r\n", "q does not hide EX");
is(mem_meta_batch($sock, "md a C4 O1\r\n"), "EX O1\r\n", "an older CAS: EX");
is(mem_meta_batch($sock, "mg a v\r\n"), "VA 3\r\nabc\r\n", "still there");
is(mem_meta_batch($sock, "md a C5\r\nmg a v\r\n"), "HD\r\nEN\r\n", "the right CAS deletes");
is(mem_meta_batch($sock, "md a C5\r\n"), "NF\r\n", "C on a missing key: NF");

# --- I: invalidate, T, E ----------------------------------------------------------
is(mem_meta_batch($sock, "ms a 3 T100\r\nabc\r\n"), "HD\r\n", "store a");
is(mem_meta_batch($sock, "md a I T30 k\r\n"), "HD ka\r\n", "mark stale with a new TTL");
is(mem_meta_batch($sock, "mg a c t v\r\n"), "VA 3 c7 t30 X W\r\nabc\r\n", "stale: value kept, CAS bumped, W for the first");
is(mem_meta_batch($sock, "mg a c\r\n"), "HD c7 Z X\r\n", "then Z");
is(mem_meta_batch($sock, "md a I q\r\n"), "", "quiet invalidate");
is(mem_meta_batch($sock, "mg a c t v\r\n"), "VA 3 c8 t30 X W\r\nabc\r\n", "invalidating again resets the win token");
is(mem_meta_batch($sock, "md a I E777 T0\r\nmg a c t\r\n"), "HD\r\nHD c777 t-1 X W\r\n", "E sets the new CAS; T0 clears the TTL");
is(mem_meta_batch($sock, "md a I C1\r\n"), "EX\r\n", "invalidate with a wrong CAS");
is(mem_meta_batch($sock, "md a I C777 T5\r\nmg a c t\r\n"), "HD\r\nHD c9 t5 X W\r\n", "invalidate with the right CAS");
is(mem_meta_batch($sock, "md a T50\r\nmg a\r\n"), "HD\r\nEN\r\n", "T without I: a plain delete");

# --- x: remove the value, keep the item ------------------------------------------------
is(mem_meta_batch($sock, "ms b 3 T100 F5\r\nabc\r\nmg b c\r\n"), "HD\r\nHD c10\r\n", "store b");
is(mem_meta_batch($sock, "md b x\r\n"), "HD\r\n", "x");
is(mem_meta_batch($sock, "mg b c t v f s\r\n"), "VA 0 c10 t-1 f0 s0\r\n\r\n",
    "empty value, flags 0, no TTL, CAS kept");
is(mem_meta_batch($sock, "ms b 3 T100 F5\r\nabc\r\n"), "HD\r\n", "store b again");
is(mem_meta_batch($sock, "md b x T20 F7\r\nmg b t f s c\r\n"), "HD\r\nHD t20 f7 s0 c11\r\n",
    "x takes T and F for the emptied item");
is(mem_meta_batch($sock, "md b x I\r\nmg b t f s c\r\n"), "HD\r\nHD t-1 f0 s0 c12 X W\r\n",
    "x with I: a stale tombstone; without T the TTL is dropped");
is(mem_meta_batch($sock, "md b x I T40 E900\r\nmg b c t s\r\n"), "HD\r\nHD c900 t40 s0 X W\r\n", "x I T E");
is(mem_meta_batch($sock, "md b x C900 q\r\nmg b c t s\r\n"), "HD c900 t-1 s0\r\n", "x replaces the stale item with a fresh one");
is(mem_meta_batch($sock, "md b C1 x\r\n"), "EX\r\n", "x with a wrong CAS");
is(mem_meta_batch($sock, "md b T5\r\nmd b T5 q\r\nmg b\r\n"), "HD\r\nNF\r\nEN\r\n", "an emptied item can be deleted");
is(mem_meta_batch($sock, "md nope x I C5 T5 q\r\n"), "NF\r\n", "all options on a missing key");
is(mem_meta_batch($sock, "md nope x I C5 T5 k O1\r\n"), "NF knope O1\r\n", "NF with k and O");

# --- base64, errors ------------------------------------------------------------
is(mem_meta_batch($sock, "md Zm9v b k\r\n"), "NF kZm9v b\r\n", "binary key miss");
is(mem_meta_batch($sock, "ms Zm9v 1 b\r\n1\r\nmd Zm9v b k\r\nmg foo\r\n"), "HD\r\nHD kZm9v b\r\nEN\r\n", "binary key delete");
is(mem_meta_batch($sock, "ms foo 1\r\n1\r\nmd Zm9v b\r\nmg foo\r\n"), "HD\r\nHD\r\nEN\r\n", "a text key deleted through base64");
is(mem_meta_batch($sock, "md Zm9 b k\r\n"), "CLIENT_ERROR error decoding key\r\n", "bad base64");
is(mem_meta_batch($sock, "md\r\n"), "CLIENT_ERROR bad command line format\r\n", "no key");
is(mem_meta_batch($sock, "md " . ('k' x 251) . "\r\n"), "CLIENT_ERROR bad command line format\r\n", "key too long");
is(mem_meta_batch($sock, "md a z\r\n"), "CLIENT_ERROR invalid flag\r\n", "invalid flag");
is(mem_meta_batch($sock, "md a noreply\r\n"), "CLIENT_ERROR invalid flag\r\n", "noreply is not a meta flag");
is(mem_meta_batch($sock, "md a k k\r\n"), "CLIENT_ERROR duplicate flag\r\n", "duplicate flag");
is(mem_meta_batch($sock, "md a Tx\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "bad T");
is(mem_meta_batch($sock, "md a Cx\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "bad C");
is(mem_meta_batch($sock, "md a Ex q\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "bad E, errors ignore q");
is(mem_meta_batch($sock, "md a O" . ('o' x 32) . "\r\n"), "CLIENT_ERROR opaque token too long\r\n", "opaque too long");
is(mem_meta_batch($sock, "ms a 1\r\n1\r\nmd a v s t c f h l u N5 R5\r\nmg a\r\n"), "HD\r\nHD\r\nEN\r\n",
    "flags of other commands are accepted and ignored");

# ============================== ma ==========================================
is(mem_meta_batch($sock, "ma n\r\n"), "NF\r\n", "miss");
is(mem_meta_batch($sock, "ma n q\r\n"), "NF\r\n", "q does not hide NF");
is(mem_meta_batch($sock, "ma n k O1 q v t c\r\n"), "NF kn O1\r\n", "NF echoes only k and O");
is(mem_meta_batch($sock, "ma n J7 v\r\n"), "NF\r\n", "J alone does not create");
is(mem_meta_batch($sock, "ma n N0 J10 v\r\n"), "VA 2\r\n10\r\n", "N creates with J");
is(mem_meta_batch($sock, "ma n v\r\n"), "VA 2\r\n11\r\n", "increment by 1");
is(mem_meta_batch($sock, "ma n\r\n"), "HD\r\n", "HD without v");
is(mem_meta_batch($sock, "ma n q v\r\n"), "", "q hides a success, value included");
is(mem_meta_batch($sock, "ma n v t c k O2\r\n"), "VA 2 t-1 c20 kn O2\r\n14\r\n", "return flags in request order");
is(mem_meta_batch($sock, "ma n O2 k c t v\r\n"), "VA 2 O2 kn c21 t-1\r\n15\r\n", "reversed");
is(mem_meta_batch($sock, "ma n MD D100 v\r\n"), "VA 1\r\n0\r\n", "decrement stops at 0");
is(mem_meta_batch($sock, "ma n M- v\r\n"), "VA 1\r\n0\r\n", "M- decrements");
is(mem_meta_batch($sock, "ma n M+ D5 v\r\n"), "VA 1\r\n5\r\n", "M+ increments");
is(mem_meta_batch($sock, "ma n MI v\r\n"), "VA 1\r\n6\r\n", "MI increments");
is(mem_meta_batch($sock, "ma n MDx v\r\n"), "VA 1\r\n5\r\n", "only the first character of M counts");
is(mem_meta_batch($sock, "ma n Mi v\r\n"), "CLIENT_ERROR invalid mode for ma M token\r\n", "modes are case sensitive");
is(mem_meta_batch($sock, "ma n M v\r\n"), "CLIENT_ERROR invalid mode for ma M token\r\n", "M without a mode");
is(mem_meta_batch($sock, "ma n ME v\r\n"), "CLIENT_ERROR invalid mode for ma M token\r\n", "ms modes are not ma modes");
is(mem_meta_batch($sock, "ma n D18446744073709551615 v\r\n"), "VA 1\r\n4\r\n", "increments wrap around 2^64");
is(mem_meta_batch($sock, "ma n D0 v\r\n"), "VA 1\r\n4\r\n", "D0");

# --- shrinking and growing numbers ---------------------------------------------------
is(mem_meta_batch($sock, "ms c 3 T100 F3\r\n100\r\nmg c c\r\n"), "HD\r\nHD c29\r\n", "store 100");
is(mem_meta_batch($sock, "ma c MD v c\r\n"), "VA 2 c30\r\n99\r\n", "99 is returned");
is(mem_meta_batch($sock, "mg c v c s t f\r\n"), "VA 3 c30 s3 t100 f3\r\n99 \r\n", "but stored space-padded in place");
is(mem_meta_batch($sock, "ma c v c\r\n"), "VA 3 c31\r\n100\r\n", "100 fits again");
is(mem_meta_batch($sock, "ma c D900 v\r\nmg c v f t\r\n"), "VA 4\r\n1000\r\nVA 4 f3 t100\r\n1000\r\n",
    "a longer number makes a new item with the same flags and TTL");
is(mem_meta_batch($sock, "ma c MD D1000 v\r\nmg c v\r\n"), "VA 1\r\n0\r\nVA 4\r\n0   \r\n", "0 padded");
is(mem_meta_batch($sock, "incr c 5\r\nmg c v\r\n"), "5\r\nVA 4\r\n5   \r\n", "classic incr sees the padded number");

# --- C and E ---------------------------------------------------------------
is(mem_meta_batch($sock, "mg c c\r\n"), "HD c34\r\n", "CAS of c");
is(mem_meta_batch($sock, "ma c C1 v\r\n"), "EX\r\n", "wrong CAS: EX");
is(mem_meta_batch($sock, "ma c C1 q v k\r\n"), "EX kc\r\n", "q does not hide EX; k is echoed");
is(mem_meta_batch($sock, "ma c C0 v c\r\n"), "VA 1 c35\r\n6\r\n", "C0 means no check");
is(mem_meta_batch($sock, "ma c C35 v c\r\n"), "VA 1 c36\r\n7\r\n", "the right CAS");
# With E, ma still draws a CAS value from the counter before overriding it.
is(mem_meta_batch($sock, "ma c E50 c v\r\nmg c c\r\n"), "VA 1 c50\r\n8\r\nHD c50\r\n", "E sets the new CAS");
is(mem_meta_batch($sock, "ma c C50 E70 c\r\n"), "HD c70\r\n", "C and E together");
is(mem_meta_batch($sock, "ma nc C5 v\r\n"), "NF\r\n", "C on a missing key: NF");
is(mem_meta_batch($sock, "ma nc C5 N0 v\r\n"), "VA 1\r\n0\r\n", "C on a missing key with N: created");

# --- T, t, N ---------------------------------------------------------------
is(mem_meta_batch($sock, "ma c T30\r\nmg c t\r\n"), "HD\r\nHD t30\r\n", "T updates the TTL");
is(mem_meta_batch($sock, "ma c t T20 v\r\n"), "VA 2 t30\r\n11\r\n", "t before T: the old TTL");
is(mem_meta_batch($sock, "ma c T40 t v\r\n"), "VA 2 t40\r\n12\r\n", "T before t: the new TTL");
is(mem_meta_batch($sock, "ma d N50 J7 T10 t v c\r\n"), "VA 1 t10 c43\r\n7\r\n", "created; a later T wins over N");
is(mem_meta_batch($sock, "ma d2 N50 J7 t v c\r\n"), "VA 1 t50 c44\r\n7\r\n", "created with N's TTL");
is(mem_meta_batch($sock, "ma d2 N10 t v\r\n"), "VA 1 t50\r\n8\r\n", "N does not touch an existing item");
is(mem_meta_batch($sock, "ma d3 N0 q\r\nmg d3 v\r\n"), "VA 1\r\n0\r\n", "quiet create, J defaults to 0");
is(mem_meta_batch($sock, "ma d4 N0 E99 c\r\n"), "HD c99\r\n", "E on a created item");
is(mem_meta_batch($sock, "ma d4 v\r\nmg d4 f t c\r\n"), "VA 1\r\n1\r\nHD f0 t-1 c47\r\n", "created items have flags 0");

# --- non-numeric values ---------------------------------------------------------
is(mem_meta_batch($sock, "ms s 3\r\nabc\r\nma s v\r\n"), "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    "letters");
is(mem_meta_batch($sock, "ma s v q\r\n"), "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "errors ignore q");
is(mem_meta_batch($sock, "ms s 0\r\n\r\nma s v\r\n"), "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    "empty value");
is(mem_meta_batch($sock, "ms s 2\r\n-1\r\nma s v\r\n"), "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    "negative number");
is(mem_meta_batch($sock, "ms s 3\r\n12a\r\nma s v\r\n"), "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    "trailing garbage");
is(mem_meta_batch($sock, "ms s 3\r\n 12\r\nma s v\r\n"), "HD\r\nVA 2\r\n13\r\n", "leading space is accepted");
is(mem_meta_batch($sock, "ms s 20\r\n18446744073709551615\r\nma s v\r\n"), "HD\r\nVA 1\r\n0\r\n", "2^64-1 + 1 wraps to 0");
is(mem_meta_batch($sock, "ms s 20\r\n18446744073709551616\r\nma s v\r\n"),
    "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "2^64 is not a number");

# --- base64 ----------------------------------------------------------------
is(mem_meta_batch($sock, "ma Zm9v b k v N0\r\n"), "VA 1 kZm9v b\r\n0\r\n", "binary key, created");
is(mem_meta_batch($sock, "ma Zm9v b k v\r\n"), "VA 1 kZm9v b\r\n1\r\n", "binary key, incremented");
is(mem_meta_batch($sock, "mg foo k v\r\n"), "VA 1 kfoo\r\n1\r\n", "an item ma creates is not marked binary");
is(mem_meta_batch($sock, "ma Zm9v b k q\r\nmg foo v\r\n"), "VA 1\r\n2\r\n", "quiet binary incr");

# --- errors: ma reports every flag problem the same way ------------------------------
is(mem_meta_batch($sock, "ma Zm9 b\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "bad base64");
is(mem_meta_batch($sock, "ma\r\n"), "CLIENT_ERROR bad command line format\r\n", "no key");
is(mem_meta_batch($sock, "ma " . ('k' x 251) . "\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "key too long");
is(mem_meta_batch($sock, "ma c z\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "invalid flag");
is(mem_meta_batch($sock, "ma c v v\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "duplicate flag");
is(mem_meta_batch($sock, "ma c Nx\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "bad N");
is(mem_meta_batch($sock, "ma c Tx\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "bad T");
is(mem_meta_batch($sock, "ma c D\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "D without a number");
is(mem_meta_batch($sock, "ma c D-1\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "negative D");
is(mem_meta_batch($sock, "ma c D18446744073709551616\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "D over 64 bits");
is(mem_meta_batch($sock, "ma c J\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n", "J without a number");
is(mem_meta_batch($sock, "ma c " . join(' ', ('v') x 19) . "\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n",
    "too many tokens");
is(mem_meta_batch($sock, "mg c v\r\n"), "VA 4\r\n12  \r\n", "none of them changed c");
is(mem_meta_batch($sock, "ma c O" . ('o' x 32) . "\r\n"), "CLIENT_ERROR opaque token too long\r\n", "opaque too long");
is(mem_meta_batch($sock, "mg c v\r\n"), "VA 4\r\n13  \r\n", "but the increment was applied before the error");
is(mem_meta_batch($sock, "ma nf O" . ('o' x 32) . "\r\n"), "CLIENT_ERROR opaque token too long\r\n", "opaque too long on a miss");
is(mem_meta_batch($sock, "ma c I x u h l f s F5\r\nmg c v f\r\n"), "HD\r\nVA 4 f3\r\n14  \r\n",
    "flags of other commands are accepted and ignored");

done_testing();
