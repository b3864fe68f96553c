#!/usr/bin/env perl
# Binary protocol basics, byte for byte as C memcached 1.6.45 answers them
# (server started with -B binary): noop, version, set/get/getk and their
# quiet forms (hits and misses), add/replace, delete(q), CAS on updates and
# deletes, opaque echoing, binary-safe keys and values, quit and quitq.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

my $server = new_memcached('-B binary');
my $sock = $server->sock;

# --- noop and version -------------------------------------------------------
{
    syswrite($sock, req(op => OP_NOOP, opaque => 0x01020304));
    my ($bytes) = read_n($sock, 24);
    is(unpack('H*', $bytes),
        '810a0000' . '00000000' . '00000000' . '01020304' . '0000000000000000',
        'noop: exact 24-byte reply, opaque echoed');

    my @got = exchange($sock, req(op => OP_VERSION, opaque => 77));
    is(scalar(@got), 1, 'version: one reply');
    my $v = $got[0];
    is(show(undef, { %$v, value => 'V' }),
        show(undef, res(op => OP_VERSION, opaque => 77, value => 'V')),
        'version: status 0, no extras or key, opaque echoed');
    like($v->{value}, qr/^(?:1\.6\.45|UNKNOWN)$/, "version: body is the bare version string ($v->{value})");
    is($v->{bodylen}, length($v->{value}), 'version: body length');
}

# --- set and the get family -------------------------------------------------
my @got = exchange_is($sock, set_req(OP_SET, 'foo', 'bar', flags => 0xdeadbeef, opaque => 7),
    [res(op => OP_SET, opaque => 7, cas => 'set')], 'set: empty success reply with a CAS');
my $cas = $got[0]{cas};

exchange_is($sock, req(op => OP_GET, key => 'foo', opaque => 8),
    [res(op => OP_GET, opaque => 8, cas => $cas, extras => pack('N', 0xdeadbeef), value => 'bar')],
    'get hit: flags in 4 bytes of extras, no key, value, CAS of the set');
exchange_is($sock, req(op => OP_GETK, key => 'foo', opaque => 9),
    [res(op => OP_GETK, opaque => 9, cas => $cas, extras => pack('N', 0xdeadbeef), key => 'foo', value => 'bar')],
    'getk hit: also returns the key');
exchange_is($sock, req(op => OP_GETQ, key => 'foo', opaque => 10),
    [res(op => OP_GETQ, opaque => 10, cas => $cas, extras => pack('N', 0xdeadbeef), value => 'bar')],
    'getq hit: answered, with the getq opcode');
exchange_is($sock, req(op => OP_GETKQ, key => 'foo', opaque => 11),
    [res(op => OP_GETKQ, opaque => 11, cas => $cas, extras => pack('N', 0xdeadbeef), key => 'foo', value => 'bar')],
    'getkq hit: answered with the key');

exchange_is($sock, req(op => OP_GET, key => 'missing', opaque => 12),
    [err_res(OP_GET, ST_ENOENT, opaque => 12)], 'get miss: status 1, body "Not found"');
exchange_is($sock, req(op => OP_GETK, key => 'missing', opaque => 13),
    [res(op => OP_GETK, status => ST_ENOENT, opaque => 13, key => 'missing')],
    'getk miss: status 1, the key and no text');
exchange_is($sock, req(op => OP_GETQ, key => 'missing'), [], 'getq miss: silent');
exchange_is($sock, req(op => OP_GETKQ, key => 'missing'), [], 'getkq miss: silent');

exchange_is($sock,
    req(op => OP_GETKQ, key => 'missing', opaque => 1)
    . req(op => OP_GETKQ, key => 'foo', opaque => 2)
    . req(op => OP_GETQ, key => 'missing2', opaque => 3)
    . req(op => OP_GETQ, key => 'foo', opaque => 4),
    [res(op => OP_GETKQ, opaque => 2, cas => $cas, extras => pack('N', 0xdeadbeef), key => 'foo', value => 'bar'),
     res(op => OP_GETQ, opaque => 4, cas => $cas, extras => pack('N', 0xdeadbeef), value => 'bar')],
    'quiet multi-get: only the hits, in order');

# Values and keys are binary-safe; an empty value is fine.
my $bin_val = join('', map { chr } 0 .. 255) . "\r\nEND\r\n";
exchange_is($sock, set_req(OP_SET, "k\x00 \r\nx", $bin_val, flags => 1),
    [res(op => OP_SET, cas => 'set')], 'set with NUL, space and CRLF in key and value');
exchange_is($sock, req(op => OP_GETK, key => "k\x00 \r\nx"),
    [res(op => OP_GETK, cas => 'set', extras => pack('N', 1), key => "k\x00 \r\nx", value => $bin_val)],
    'binary key and value come back intact');
exchange_is($sock, set_req(OP_SET, 'empty', ''), [res(op => OP_SET, cas => 'set')], 'set an empty value');
exchange_is($sock, req(op => OP_GET, key => 'empty'),
    [res(op => OP_GET, cas => 'set', extras => pack('N', 0))], 'get an empty value: body is only the flags');
my $max_key = 'k' x 250;
exchange_is($sock, set_req(OP_SET, $max_key, 'long'), [res(op => OP_SET, cas => 'set')], 'set with a 250-byte key');
exchange_is($sock, req(op => OP_GETK, key => $max_key),
    [res(op => OP_GETK, cas => 'set', extras => pack('N', 0), key => $max_key, value => 'long')],
    'getk with a 250-byte key');

# The request's vbucket and data type fields are ignored.
exchange_is($sock, req(op => OP_GET, key => 'foo', vbucket => 0x1234, datatype => 0x55, opaque => 5),
    [res(op => OP_GET, opaque => 5, cas => $cas, extras => pack('N', 0xdeadbeef), value => 'bar')],
    'vbucket and data type in a request are ignored');

# --- add, replace and their quiet forms ----------------------------------------
exchange_is($sock, set_req(OP_ADD, 'foo', 'x', opaque => 20),
    [err_res(OP_ADD, ST_EEXISTS, opaque => 20)], 'add of an existing key: EEXISTS');
exchange_is($sock, set_req(OP_ADDQ, 'foo', 'x', opaque => 21),
    [err_res(OP_ADDQ, ST_EEXISTS, opaque => 21)], 'addq failure is not quiet');
exchange_is($sock, set_req(OP_ADD, 'new1', 'a', flags => 3),
    [res(op => OP_ADD, cas => 'set')], 'add of a new key');
exchange_is($sock, set_req(OP_ADDQ, 'new2', 'b', flags => 4), [], 'addq success: silent');
exchange_is($sock, set_req(OP_REPLACE, 'nokey', 'x', opaque => 22),
    [err_res(OP_REPLACE, ST_ENOENT, opaque => 22)], 'replace of a missing key: ENOENT');
exchange_is($sock, set_req(OP_REPLACEQ, 'nokey', 'x', opaque => 23),
    [err_res(OP_REPLACEQ, ST_ENOENT, opaque => 23)], 'replaceq failure is not quiet');
exchange_is($sock, set_req(OP_REPLACE, 'new1', 'A', flags => 5),
    [res(op => OP_REPLACE, cas => 'set')], 'replace of an existing key');
exchange_is($sock, set_req(OP_REPLACEQ, 'new2', 'B', flags => 6), [], 'replaceq success: silent');
exchange_is($sock, set_req(OP_SETQ, 'new3', 'C', flags => 7), [], 'setq success: silent');
exchange_is($sock,
    req(op => OP_GETK, key => 'new1') . req(op => OP_GETK, key => 'new2') . req(op => OP_GETK, key => 'new3'),
    [res(op => OP_GETK, cas => 'set', extras => pack('N', 5), key => 'new1', value => 'A'),
     res(op => OP_GETK, cas => 'set', extras => pack('N', 6), key => 'new2', value => 'B'),
     res(op => OP_GETK, cas => 'set', extras => pack('N', 7), key => 'new3', value => 'C')],
    'the stored values and flags');

# --- CAS --------------------------------------------------------------------------
@got = exchange($sock, req(op => OP_GET, key => 'new1'));
my $cas1 = $got[0]{cas};
exchange_is($sock, set_req(OP_SET, 'new1', 'stale', cas => $cas1 + 1000, opaque => 30),
    [err_res(OP_SET, ST_EEXISTS, opaque => 30)], 'set with a wrong CAS: EEXISTS');
exchange_is($sock, set_req(OP_SETQ, 'new1', 'stale', cas => $cas1 + 1000, opaque => 31),
    [err_res(OP_SETQ, ST_EEXISTS, opaque => 31)], 'setq with a wrong CAS: EEXISTS, not quiet');
exchange_is($sock, set_req(OP_REPLACE, 'new1', 'stale', cas => $cas1 + 1000),
    [err_res(OP_REPLACE, ST_EEXISTS)], 'replace with a wrong CAS: EEXISTS');
# A CAS turns add and replace into a plain compare-and-swap.
@got = exchange_is($sock, set_req(OP_ADD, 'new1', 'via-add', flags => 8, cas => $cas1),
    [res(op => OP_ADD, cas => 'set')], 'add with the right CAS of an existing key: stored (acts as cas)');
exchange_is($sock, req(op => OP_GET, key => 'new1'),
    [res(op => OP_GET, cas => $got[0]{cas}, extras => pack('N', 8), value => 'via-add')], 'add with CAS replaced the value');
$cas1 = $got[0]{cas};
@got = exchange_is($sock, set_req(OP_REPLACEQ, 'new1', 'via-replace', flags => 8, cas => $cas1),
    [], 'replaceq with the right CAS: stored, silent');
exchange_is($sock, req(op => OP_GET, key => 'new1'),
    [res(op => OP_GET, cas => $cas1 + 1, extras => pack('N', 8), value => 'via-replace')], 'replace with CAS replaced the value');
$cas1++;
exchange_is($sock, set_req(OP_SET, 'nocas', 'v', cas => 12345),
    [err_res(OP_SET, ST_ENOENT)], 'set with a CAS on a missing key: ENOENT');
exchange_is($sock, set_req(OP_ADD, 'nocas', 'v', cas => 12345),
    [err_res(OP_ADD, ST_ENOENT)], 'add with a CAS on a missing key: ENOENT');
exchange_is($sock, req(op => OP_GET, key => 'nocas'), [err_res(OP_GET, ST_ENOENT)], 'nothing was stored');
@got = exchange_is($sock, set_req(OP_SET, 'new1', 'fresh', flags => 9, cas => $cas1),
    [res(op => OP_SET, cas => 'set')], 'set with the right CAS');
my $cas2 = $got[0]{cas};
ok($cas2 > $cas1, 'a successful CAS set gets a new, higher CAS');
exchange_is($sock, req(op => OP_GET, key => 'new1'),
    [res(op => OP_GET, cas => $cas2, extras => pack('N', 9), value => 'fresh')], 'the CAS set took effect');
exchange_is($sock, set_req(OP_SET, 'new1', 'again', cas => $cas1),
    [err_res(OP_SET, ST_EEXISTS)], 'the old CAS no longer matches');

# CAS values: each store attempt draws a new CAS, successful or not.
@got = exchange($sock, set_req(OP_SET, 'seq', '1'));
my $c0 = $got[0]{cas};
exchange($sock, set_req(OP_ADD, 'seq', '2'));           # fails: exists
exchange($sock, set_req(OP_REPLACE, 'seq-none', '2'));  # fails: missing
@got = exchange($sock, set_req(OP_SET, 'seq', '3'));
is($got[0]{cas}, $c0 + 3, 'failed add/replace attempts also use up CAS values');

# --- delete -------------------------------------------------------------------------
exchange_is($sock, req(op => OP_DELETE, key => 'missing', opaque => 40),
    [err_res(OP_DELETE, ST_ENOENT, opaque => 40)], 'delete miss: ENOENT');
exchange_is($sock, req(op => OP_DELETEQ, key => 'missing', opaque => 41),
    [err_res(OP_DELETEQ, ST_ENOENT, opaque => 41)], 'deleteq miss is not quiet');
@got = exchange($sock, req(op => OP_GET, key => 'new2'));
exchange_is($sock, req(op => OP_DELETE, key => 'new2', cas => $got[0]{cas} + 1000),
    [err_res(OP_DELETE, ST_EEXISTS)], 'delete with a wrong CAS: EEXISTS');
exchange_is($sock, req(op => OP_DELETE, key => 'new2', cas => $got[0]{cas}, opaque => 42),
    [res(op => OP_DELETE, opaque => 42)], 'delete with the right CAS: success, CAS 0 in the reply');
exchange_is($sock, req(op => OP_DELETE, key => 'new3'), [res(op => OP_DELETE)], 'delete hit');
exchange_is($sock, req(op => OP_DELETEQ, key => 'new1'), [], 'deleteq hit: silent');
exchange_is($sock, req(op => OP_GETK, key => 'new1') . req(op => OP_GETK, key => 'new3'),
    [res(op => OP_GETK, status => ST_ENOENT, key => 'new1'),
     res(op => OP_GETK, status => ST_ENOENT, key => 'new3')], 'deleted keys are gone');

# --- quit -------------------------------------------------------------------------------
{
    my $s = $server->new_sock;
    syswrite($s, req(op => OP_QUIT, opaque => 0xabcd));
    is(unpack('H*', until_close($s)),
        '81070000' . '00000000' . '00000000' . '0000abcd' . '0000000000000000',
        'quit: a success reply, then the connection closes');

    $s = $server->new_sock;
    syswrite($s, req(op => OP_QUITQ));
    is(until_close($s), '', 'quitq: closes without a reply');

    $s = $server->new_sock;
    syswrite($s, req(op => OP_GET, key => 'foo', opaque => 1) . req(op => OP_QUIT, opaque => 2)
        . req(op => OP_GET, key => 'foo', opaque => 3));
    my $data = until_close($s);
    my @ops;
    while (length($data) >= 24) {
        my ($op, $bodylen, $opaque) = unpack('x C x6 N N', $data);
        push(@ops, sprintf('%02x/%d', $op, $opaque));
        substr($data, 0, 24 + $bodylen, '');
    }
    is("@ops", '00/1 07/2', 'replies before quit are sent; commands after it are dropped');

    $s = $server->new_sock;
    syswrite($s, set_req(OP_SETQ, 'q1', 'v') . req(op => OP_QUITQ));
    is(until_close($s), '', 'setq then quitq: nothing sent');
    exchange_is($sock, req(op => OP_GET, key => 'q1'),
        [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => 'v')],
        'the setq before quitq was applied');
}

exchange_is($sock, req(op => OP_GET, key => 'foo'),
    [res(op => OP_GET, cas => $cas, extras => pack('N', 0xdeadbeef), value => 'bar')],
    'the first connection still works');

done_testing();
