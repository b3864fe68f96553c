#!/usr/bin/env perl
# Meta get (mg): hits and misses, every return flag (b c f h k l O s t v), quiet mode,
# conditional fetch (C), touch (T), vivify (N), recache (R) and the W/X/Z win/stale flags,
# base64 keys, and the parse errors, byte for byte as C 1.6.45. The server clock is
# paused (debugtime) so TTLs and access times are exact.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;


# Move the paused clock by exactly $n seconds. C keeps a running delta: each debugtime adds
# its argument to the delta and then the whole delta to the clock.
my $delta = 0;
sub advance {
    my ($sock, $n) = @_;
    my $arg = $n - $delta;
    $delta = $n;
    is(mem_meta_batch($sock, "debugtime $arg\r\n"), "OK\r\n", "clock moves $n s");
}

my $server = new_memcached();
my $sock = $server->sock;
is(mem_meta_batch($sock, "debugtime p\r\n"), "OK\r\n", "pause the clock");

# --- misses ---------------------------------------------------------------
is(mem_meta_batch($sock, "mg miss\r\n"), "EN\r\n", "miss without flags");
is(mem_meta_batch($sock, "mg miss v\r\n"), "EN\r\n", "miss with v");
is(mem_meta_batch($sock, "mg miss s v t c f h l\r\n"), "EN\r\n", "a miss returns no item flags");
is(mem_meta_batch($sock, "mg miss O12 k v\r\n"), "EN O12 kmiss\r\n", "a miss echoes O and k, in request order");
is(mem_meta_batch($sock, "mg miss k O12\r\n"), "EN kmiss O12\r\n", "k then O");
is(mem_meta_batch($sock, "mg miss v q\r\n"), "", "quiet miss: nothing");
is(mem_meta_batch($sock, "mg miss q k O1\r\n"), "", "quiet miss with k and O: nothing");

# --- hits -----------------------------------------------------------------
is(mem_meta_batch($sock, "ms hello 5 F42\r\nworld\r\n"), "HD\r\n", "store an item");
is(mem_meta_batch($sock, "mg hello\r\n"), "HD\r\n", "hit without flags: HD");
is(mem_meta_batch($sock, "mg hello v\r\n"), "VA 5\r\nworld\r\n", "hit with v");
is(mem_meta_batch($sock, "mg hello q\r\n"), "HD\r\n", "q does not hide a hit");
is(mem_meta_batch($sock, "mg hello v q\r\n"), "VA 5\r\nworld\r\n", "nor a value");
is(mem_meta_batch($sock, "mg hello s v f t c k O7\r\n"), "VA 5 s5 f42 t-1 c2 khello O7\r\nworld\r\n",
    "all return flags, in request order");
is(mem_meta_batch($sock, "mg hello O7 k c t f v s\r\n"), "VA 5 O7 khello c2 t-1 f42 s5\r\nworld\r\n",
    "the same flags in reverse order");
is(mem_meta_batch($sock, "mg hello  s   v \r\n"), "VA 5 s5\r\nworld\r\n", "extra spaces between flags");
is(mem_meta_batch($sock, "mg hello s v\n"), "VA 5 s5\r\nworld\r\n", "a bare \\n ends the line");
is(mem_meta_batch($sock, "mg hello P L Pfoo/bar v\r\n"), "CLIENT_ERROR duplicate flag\r\n",
    "P and L are ignored but may appear once each");
is(mem_meta_batch($sock, "mg hello Pfoo/ Lbar v\r\n"), "VA 5\r\nworld\r\n", "P and L tokens are ignored");
is(mem_meta_batch($sock, "mg hello O\r\n"), "HD O\r\n", "an empty opaque is echoed as O");
# The limit of 32 bytes counts the whole token, O included.
my $o31 = 'o' x 31;
is(mem_meta_batch($sock, "mg hello O$o31\r\n"), "HD O$o31\r\n", "an opaque of 31 bytes after the O");
is(mem_meta_batch($sock, "mg hello Ox$o31\r\n"), "CLIENT_ERROR opaque token too long\r\n", "32 bytes after the O is too long");
is(mem_meta_batch($sock, "mg miss Ox$o31\r\n"), "CLIENT_ERROR opaque token too long\r\n", "also on a miss");
is(mem_meta_batch($sock, "mg miss Ox$o31 q\r\n"), "CLIENT_ERROR opaque token too long\r\n",
    "errors are sent in quiet mode");

# --- f: client flags ---------------------------------------------------------
is(mem_meta_batch($sock, "ms fl 1 F4294967295\r\nx\r\nmg fl f\r\n"), "HD\r\nHD f4294967295\r\n", "32-bit client flags");
is(mem_meta_batch($sock, "ms fl 1\r\nx\r\nmg fl f\r\n"), "HD\r\nHD f0\r\n", "no F: flags 0");

# --- C: conditional value --------------------------------------------------
is(mem_meta_batch($sock, "mg hello c\r\n"), "HD c2\r\n", "CAS of hello");
is(mem_meta_batch($sock, "mg hello C2 v c s\r\n"), "HD c2 s5\r\n", "matching C drops the value, HD");
is(mem_meta_batch($sock, "mg hello C1 v c\r\n"), "VA 5 c2\r\nworld\r\n", "other C: value sent");
is(mem_meta_batch($sock, "mg hello C2 c\r\n"), "HD c2\r\n", "C without v");
is(mem_meta_batch($sock, "mg hello C18446744073709551615 v\r\n"), "VA 5\r\nworld\r\n", "largest CAS token");
is(mem_meta_batch($sock, "mg hello C18446744073709551616 v\r\n"), "CLIENT_ERROR bad token in command line format\r\n",
    "CAS token over 64 bits");
is(mem_meta_batch($sock, "mg hello Cx v\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "non-numeric C");
is(mem_meta_batch($sock, "mg hello C v\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "C without a number");

# --- t and T: TTL ----------------------------------------------------------
is(mem_meta_batch($sock, "ms ttl 2 T100\r\nhi\r\n"), "HD\r\n", "store with TTL 100");
is(mem_meta_batch($sock, "mg ttl t\r\n"), "HD t100\r\n", "t: remaining TTL");
advance($sock, 10);
is(mem_meta_batch($sock, "mg ttl t v\r\n"), "VA 2 t90\r\nhi\r\n", "10 s later");
is(mem_meta_batch($sock, "mg ttl T30 t\r\n"), "HD t30\r\n", "T before t: the new TTL is shown");
is(mem_meta_batch($sock, "mg ttl t T50\r\n"), "HD t30\r\n", "t before T: the old TTL is shown");
is(mem_meta_batch($sock, "mg ttl t\r\n"), "HD t50\r\n", "the TTL was updated");
is(mem_meta_batch($sock, "mg ttl T0 t\r\n"), "HD t-1\r\n", "T0: no expiry");
is(mem_meta_batch($sock, "mg ttl Tx\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "non-numeric T");
is(mem_meta_batch($sock, "mg ttl T\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "T without a number");
is(mem_meta_batch($sock, "mg ttl N\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "N without a number");
is(mem_meta_batch($sock, "mg ttl R\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "R without a number");
is(mem_meta_batch($sock, "mg ttl T5 q\r\n"), "HD\r\n", "T on a hit in quiet mode still answers HD");
advance($sock, 6);
is(mem_meta_batch($sock, "mg ttl v\r\n"), "EN\r\n", "the touched item expired");
is(mem_meta_batch($sock, "mg ttl T5 v\r\n"), "EN\r\n", "touching a missing item");

# --- h: hit before ---------------------------------------------------------
is(mem_meta_batch($sock, "ms hb 1\r\na\r\n"), "HD\r\n", "store hb");
is(mem_meta_batch($sock, "mg hb h u\r\n"), "HD h0\r\n", "never fetched: h0");
is(mem_meta_batch($sock, "mg hb h u v\r\n"), "VA 1 h0\r\na\r\n", "u does not mark it fetched");
is(mem_meta_batch($sock, "mg hb h\r\n"), "HD h0\r\n", "h shows the state before this fetch");
is(mem_meta_batch($sock, "mg hb h\r\n"), "HD h1\r\n", "now fetched: h1");
is(mem_meta_batch($sock, "ms hb 1\r\nb\r\nmg hb h\r\n"), "HD\r\nHD h0\r\n", "a new value is not fetched yet");
is(mem_meta_batch($sock, "mg hb v\r\nmg hb h\r\n"), "VA 1\r\nb\r\nHD h1\r\n", "a plain mg marks it fetched");

# --- l: last access (segmented LRU: the first fetch does not move the time) ---------
is(mem_meta_batch($sock, "ms la 1\r\na\r\n"), "HD\r\n", "store la");
advance($sock, 7);
is(mem_meta_batch($sock, "mg la l u\r\n"), "HD l7\r\n", "7 s since the store");
is(mem_meta_batch($sock, "mg la l h\r\n"), "HD l7 h0\r\n", "first fetch");
is(mem_meta_batch($sock, "mg la l h u\r\n"), "HD l7 h1\r\n", "marked fetched, time kept");

# --- N: vivify on miss, W and Z ----------------------------------------------
is(mem_meta_batch($sock, "mg viv N30 s v t c\r\n"), "VA 0 s0 t30 c9 W\r\n\r\n", "vivify: empty item, W");
is(mem_meta_batch($sock, "mg viv N30 s v t c\r\n"), "VA 0 s0 t30 c9 Z\r\n\r\n", "second client: Z, no W");
is(mem_meta_batch($sock, "mg viv v\r\n"), "VA 0 Z\r\n\r\n", "Z without N too");
is(mem_meta_batch($sock, "mg viv k q\r\n"), "HD kviv Z\r\n", "flags come before Z");
is(mem_meta_batch($sock, "ms viv 3 T60\r\nnew\r\n"), "HD\r\n", "the winner stores the value");
is(mem_meta_batch($sock, "mg viv N30 v t\r\n"), "VA 3 t60\r\nnew\r\n", "a fresh item carries no win flags");
is(mem_meta_batch($sock, "mg viv2 N0 t q\r\n"), "HD t-1 W\r\n", "N0: vivified item without expiry; q does not hide it");
is(mem_meta_batch($sock, "mg viv3 N30 E999 c\r\n"), "HD c999 W\r\n", "E sets the CAS of a vivified item");
is(mem_meta_batch($sock, "mg viv3 E5 c\r\n"), "HD c999 Z\r\n", "E does not change an existing item");

# --- R: recache ----------------------------------------------------------
is(mem_meta_batch($sock, "mg viv R30 v t\r\n"), "VA 3 t60\r\nnew\r\n", "TTL above R: no win");
advance($sock, 31);
is(mem_meta_batch($sock, "mg viv R30 v t\r\n"), "VA 3 t29 W\r\nnew\r\n", "TTL below R: W");
is(mem_meta_batch($sock, "mg viv R30 v t\r\n"), "VA 3 t29 Z\r\nnew\r\n", "then Z");
is(mem_meta_batch($sock, "mg viv t\r\n"), "HD t29 Z\r\n", "Z stays until the item is replaced");
is(mem_meta_batch($sock, "ms rc 1 T0\r\nx\r\nmg rc R30 t\r\n"), "HD\r\nHD t-1\r\n", "an item without expiry never wins R");

# --- X: stale (md I), then a recache ------------------------------------------
is(mem_meta_batch($sock, "ms stale 3 T100\r\nold\r\nmg stale c\r\n"), "HD\r\nHD c13\r\n", "store stale");
is(mem_meta_batch($sock, "md stale I T30\r\n"), "HD\r\n", "md I marks it stale");
is(mem_meta_batch($sock, "mg stale v t c\r\n"), "VA 3 t30 c14 X W\r\nold\r\n", "stale: X and the first client wins");
is(mem_meta_batch($sock, "mg stale v t c\r\n"), "VA 3 t30 c14 Z X\r\nold\r\n", "later clients: Z X");
is(mem_meta_batch($sock, "mg stale R60 N30 t\r\n"), "HD t30 Z X\r\n", "R and N do not win again");
is(mem_meta_batch($sock, "ms stale 3 C14 T100\r\nnew\r\n"), "HD\r\n", "the winner recaches with its CAS");
is(mem_meta_batch($sock, "mg stale v t\r\n"), "VA 3 t100\r\nnew\r\n", "fresh again");
is(mem_meta_batch($sock, "md stale I\r\nmg stale t\r\n"), "HD\r\nHD t100 X W\r\n", "md I without T keeps the TTL");

# --- X via ms I: a set with an older CAS stores a stale value ------------------
is(mem_meta_batch($sock, "ms inv 3 T100\r\nold\r\nmg inv c\r\n"), "HD\r\nHD c17\r\n", "store inv");
is(mem_meta_batch($sock, "ms inv 3 C16 I c\r\nnew\r\n"), "HD c18\r\n", "lower CAS with I: stored");
is(mem_meta_batch($sock, "mg inv v c t\r\n"), "VA 3 c18 t100 X W\r\nnew\r\n", "the value is stale");
is(mem_meta_batch($sock, "mg inv v c\r\n"), "VA 3 c18 Z X\r\nnew\r\n", "then Z X");
is(mem_meta_batch($sock, "ms inv 3 C19 I\r\nbad\r\n"), "EX\r\n", "a higher CAS is refused even with I");
is(mem_meta_batch($sock, "ms inv 3 C3 I\r\nsec\r\nmg inv v c\r\n"), "HD\r\nVA 3 c20 Z X\r\nsec\r\n",
    "another stale set keeps Z and X");
is(mem_meta_batch($sock, "ms inv 3 C20 I\r\nfix\r\nmg inv v c\r\n"), "HD\r\nVA 3 c21\r\nfix\r\n",
    "the matching CAS clears the stale state");

# --- base64 keys ----------------------------------------------------------
# "Zm9v" is "foo"; "AAEC" is bytes 0 1 2.
is(mem_meta_batch($sock, "ms foo 2\r\nhi\r\n"), "HD\r\n", "store foo as text");
is(mem_meta_batch($sock, "mg Zm9v b v k\r\n"), "VA 2 kfoo\r\nhi\r\n", "b decodes the key; k prints how the item was stored");
is(mem_meta_batch($sock, "ms Zm9v 2 b\r\nho\r\n"), "HD\r\n", "store foo with a base64 key");
is(mem_meta_batch($sock, "mg Zm9v b v k\r\n"), "VA 2 kZm9v b\r\nho\r\n", "binary key: k prints base64 and b");
is(mem_meta_batch($sock, "mg foo v k\r\n"), "VA 2 kZm9v b\r\nho\r\n", "the binary mark is on the item");
is(mem_meta_batch($sock, "mg AAEC b k v\r\n"), "EN kAAEC b\r\n", "a miss echoes the base64 key with b");
is(mem_meta_batch($sock, "mg AAEC b k q\r\n"), "", "quiet binary miss");
is(mem_meta_batch($sock, "ms AAEC 1 b\r\nx\r\nmg AAEC b k s\r\n"), "HD\r\nHD kAAEC b s1\r\n", "binary key hit");
is(mem_meta_batch($sock, "mg Zm9 b v\r\n"), "CLIENT_ERROR error decoding key\r\n", "bad base64 length");
is(mem_meta_batch($sock, "mg Zm9v= b v\r\n"), "CLIENT_ERROR error decoding key\r\n", "bad padding");
is(mem_meta_batch($sock, "mg !!!! b v\r\n"), "CLIENT_ERROR error decoding key\r\n", "bad base64 characters");
is(mem_meta_batch($sock, "mg Zm9 b v q\r\n"), "CLIENT_ERROR error decoding key\r\n", "decode errors ignore q");

# --- key length -----------------------------------------------------------
my $k250 = 'k' x 250;
my $k251 = 'k' x 251;
is(mem_meta_batch($sock, "mg $k250 v\r\n"), "EN\r\n", "a 250 byte key");
is(mem_meta_batch($sock, "ms $k250 1\r\nx\r\nmg $k250 s k\r\n"), "HD\r\nHD s1 k$k250\r\n", "stored under a 250 byte key");
is(mem_meta_batch($sock, "mg $k251 v\r\n"), "CLIENT_ERROR bad command line format\r\n", "251 bytes is too long");
is(mem_meta_batch($sock, "mg $k251 v q\r\n"), "CLIENT_ERROR bad command line format\r\n", "also in quiet mode");

# --- bad flags and tokens ---------------------------------------------------
is(mem_meta_batch($sock, "mg\r\n"), "CLIENT_ERROR bad command line format\r\n", "mg without a key");
is(mem_meta_batch($sock, "mg \r\n"), "CLIENT_ERROR bad command line format\r\n", "mg with a blank key");
is(mem_meta_batch($sock, "mg hello v v\r\n"), "CLIENT_ERROR duplicate flag\r\n", "duplicate v");
is(mem_meta_batch($sock, "mg hello O1 O2\r\n"), "CLIENT_ERROR duplicate flag\r\n", "duplicate O with different tokens");
is(mem_meta_batch($sock, "mg hello q v q\r\n"), "CLIENT_ERROR duplicate flag\r\n", "duplicate q still answers");
is(mem_meta_batch($sock, "mg hello z\r\n"), "CLIENT_ERROR invalid flag\r\n", "unknown flag");
is(mem_meta_batch($sock, "mg hello K\r\n"), "CLIENT_ERROR invalid flag\r\n", "unknown upper case flag");
is(mem_meta_batch($sock, "mg hello 5\r\n"), "CLIENT_ERROR invalid flag\r\n", "a digit is an invalid flag");
is(mem_meta_batch($sock, "mg hello !x\r\n"), "CLIENT_ERROR bad command line format\r\n",
    "a flag starting with punctuation fails tokenizing");
is(mem_meta_batch($sock, "mg hello D v\r\n"), "CLIENT_ERROR invalid numeric delta value\r\n", "ma's D is parsed by mg");
is(mem_meta_batch($sock, "mg hello J v\r\n"), "CLIENT_ERROR invalid numeric initial value\r\n", "ma's J is parsed by mg");
is(mem_meta_batch($sock, "mg hello F v\r\n"), "CLIENT_ERROR bad command line format\r\n", "ms's F is parsed by mg");
is(mem_meta_batch($sock, "mg hello Ex v\r\n"), "CLIENT_ERROR bad token in command line format\r\n", "bad E token");
is(mem_meta_batch($sock, "mg hello x I M v\r\n"), "VA 5\r\nworld\r\n", "md/ms flags are accepted and ignored");
is(mem_meta_batch($sock, "mg hello " . join(' ', ('v') x 19) . "\r\n"), "CLIENT_ERROR options flags are too long\r\n",
    "more than 20 tokens");
is(mem_meta_batch($sock, "mg hello s v c f k t u O1 q P L E1 N1 R1 T0 x I M\r\n"),
    "VA 5 s5 c2 f42 khello t-1 O1\r\nworld\r\n", "exactly 20 tokens");
is(mem_meta_batch($sock, "MG hello v\r\n"), "ERROR\r\n", "commands are case sensitive");
is(mem_meta_batch($sock, "mgx hello v\r\n"), "ERROR\r\n", "three letters: unknown command");

# --- a hit that was never bumped shows in me as not fetched -----------------------
is(mem_meta_batch($sock, "ms plain 1\r\np\r\nmg plain u v\r\nme plain\r\n"),
    "HD\r\nVA 1\r\np\r\nME plain exp=-1 la=0 cas=26 fetch=no cls=1 size=65\r\n",
    "mg u leaves the item unfetched");

is(mem_meta_batch($sock, "mg hello v noreply\r\n"), "CLIENT_ERROR invalid flag\r\n",
    "the classic noreply token is not a meta flag");

# --- l without the segmented LRU: a fetch moves the access time only once it is 60 s old -----
{
    my $srv = new_memcached("-o no_lru_maintainer");
    my $s = $srv->sock;
    is(mem_meta_batch($s, "debugtime p\r\nms a 1\r\n1\r\n"), "OK\r\nHD\r\n", "pause the clock, store a");
    is(mem_meta_batch($s, "debugtime 30\r\n"), "OK\r\n", "clock moves 30 s");
    is(mem_meta_batch($s, "mg a l h\r\nmg a l h\r\n"), "HD l30 h0\r\nHD l30 h1\r\n", "30 s old: fetches do not move it");
    is(mem_meta_batch($s, "debugtime 31\r\n"), "OK\r\n", "clock moves 61 s more (running delta)");
    is(mem_meta_batch($s, "mg a l h u\r\n"), "HD l91 h1\r\n", "u: no update");
    is(mem_meta_batch($s, "mg a l h\r\n"), "HD l91 h1\r\n", "l shows the time before this fetch");
    is(mem_meta_batch($s, "mg a l h\r\n"), "HD l0 h1\r\n", "the previous fetch moved it");
}

done_testing();
