#!/usr/bin/env perl
# Binary increment/decrement (and quiet forms) and append/prepend (and quiet
# forms), byte for byte as C memcached 1.6.45: 8-byte results, initial values
# and expirations when the key is missing, the 0xffffffff "do not create"
# expiration, wrap-around and clamping, in-place space padding, non-numeric
# values, CAS checks, flags and expirations kept by append/prepend. The
# server clock is paused (debugtime over a text connection) so expirations
# are exact.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

# The default protocol setting (auto) lets a text connection drive the clock.
my $server = new_memcached();
my $sock = $server->sock;
my $text = $server->new_sock;

# Move the paused clock forward by exactly $n seconds. While paused, C adds
# each debugtime argument to a running delta, then the whole delta to the clock.
my ($delta, $now) = (0, 0);
sub advance {
    my ($n) = @_;
    my $arg = $n - $delta;
    $delta = $n;
    $now += $n;
    print $text "debugtime $arg\r\n";
    is(scalar(<$text>), "OK\r\n", "clock moves to +$now s");
}
print $text "debugtime p\r\n";
is(scalar(<$text>), "OK\r\n", 'pause the clock');

sub u64 { return pack('Q>', $_[0]) }
sub get_res {
    my ($value, %r) = @_;
    return res(op => OP_GET, cas => 'set', extras => pack('N', $r{flags} // 0), value => $value, %r);
}

# --- creation from the initial value -------------------------------------------
my @got = exchange_is($sock, arith_req(OP_INCR, 'n', 5, 42, 0, opaque => 3),
    [res(op => OP_INCR, opaque => 3, cas => 'set', value => u64(42))],
    'incr of a missing key stores the initial value (delta not applied) and returns it');
my $cas = $got[0]{cas};
exchange_is($sock, req(op => OP_GET, key => 'n'), [get_res('42', cas => $cas)],
    'created as text "42" with flags 0, same CAS');
@got = exchange_is($sock, arith_req(OP_INCR, 'n', 5, 1000, 0),
    [res(op => OP_INCR, cas => 'set', value => u64(47))], 'incr of an existing key adds the delta');
ok($got[0]{cas} > $cas, 'incr gives a new CAS');
exchange_is($sock, arith_req(OP_DECR, 'd', 5, 9, 0),
    [res(op => OP_DECR, cas => 'set', value => u64(9))], 'decr of a missing key stores the initial value');
exchange_is($sock, arith_req(OP_DECR, 'd', 4, 0, 0),
    [res(op => OP_DECR, cas => 'set', value => u64(5))], 'decr subtracts');
exchange_is($sock, arith_req(OP_INCR, 'big0', 1, 18446744073709551615, 0),
    [res(op => OP_INCR, cas => 'set', value => u64(18446744073709551615))], 'the initial value is a full 64-bit number');
exchange_is($sock, req(op => OP_GET, key => 'big0'), [get_res('18446744073709551615')], 'stored in decimal');

# --- the "do not create" expiration ----------------------------------------------
exchange_is($sock, arith_req(OP_INCR, 'absent', 1, 5, 0xffffffff, opaque => 9),
    [err_res(OP_INCR, ST_ENOENT, opaque => 9)], 'incr with expiration 0xffffffff on a missing key: ENOENT');
exchange_is($sock, arith_req(OP_DECR, 'absent', 1, 5, 0xffffffff),
    [err_res(OP_DECR, ST_ENOENT)], 'decr likewise');
exchange_is($sock, arith_req(OP_INCRQ, 'absent', 1, 5, 0xffffffff),
    [err_res(OP_INCRQ, ST_ENOENT)], 'incrq: the miss is not quiet');
exchange_is($sock, arith_req(OP_DECRQ, 'absent', 1, 5, 0xffffffff),
    [err_res(OP_DECRQ, ST_ENOENT)], 'decrq: the miss is not quiet');
exchange_is($sock, req(op => OP_GET, key => 'absent'), [err_res(OP_GET, ST_ENOENT)], 'nothing was created');
exchange_is($sock, arith_req(OP_INCR, 'n', 1, 5, 0xffffffff),
    [res(op => OP_INCR, cas => 'set', value => u64(48))], 'an existing key is incremented despite 0xffffffff');

# --- quiet forms ------------------------------------------------------------------
exchange_is($sock, arith_req(OP_INCRQ, 'n', 2, 0, 0) . arith_req(OP_DECRQ, 'n', 10, 0, 0)
    . arith_req(OP_INCRQ, 'q-new', 2, 77, 0), [], 'incrq/decrq successes and creations are silent');
exchange_is($sock, req(op => OP_GET, key => 'n') . req(op => OP_GET, key => 'q-new'),
    [get_res('40'), get_res('77')], 'the quiet updates were applied');

# --- wrap-around, clamping, in-place padding ------------------------------------------
exchange_is($sock, set_req(OP_SET, 'max', '18446744073709551615'), [res(op => OP_SET, cas => 'set')], 'set 2^64-1');
exchange_is($sock, arith_req(OP_INCR, 'max', 2, 0, 0),
    [res(op => OP_INCR, cas => 'set', value => u64(1))], 'incr wraps around modulo 2^64');
exchange_is($sock, req(op => OP_GET, key => 'max'), [get_res('1' . (' ' x 19))],
    'a shorter result is written in place, padded with spaces to the old length');
exchange_is($sock, arith_req(OP_DECR, 'max', 100, 0, 0),
    [res(op => OP_DECR, cas => 'set', value => u64(0))], 'decr below zero stops at 0');
exchange_is($sock, req(op => OP_GET, key => 'max'), [get_res('0' . (' ' x 19))], 'still padded');
exchange_is($sock, set_req(OP_SET, 'grow', '99', flags => 0x4d), [res(op => OP_SET, cas => 'set')], 'set 99 with flags');
exchange_is($sock, arith_req(OP_INCR, 'grow', 1, 0, 0), [res(op => OP_INCR, cas => 'set', value => u64(100))], 'incr to 100');
exchange_is($sock, req(op => OP_GET, key => 'grow'), [get_res('100', flags => 0x4d)],
    'a longer result makes a new item; flags are kept');
exchange_is($sock, arith_req(OP_DECR, 'grow', 1, 0, 0), [res(op => OP_DECR, cas => 'set', value => u64(99))], 'decr to 99');
exchange_is($sock, req(op => OP_GET, key => 'grow'), [get_res('99 ', flags => 0x4d)], 'shrinking pads with a space');
exchange_is($sock, arith_req(OP_INCR, 'grow', 0, 0, 0), [res(op => OP_INCR, cas => 'set', value => u64(99))],
    'a trailing space still parses as a number');

# --- values that are not numbers ----------------------------------------------------------
for my $case (['neg', '-5'], ['alpha', 'abc'], ['empty', ''], ['long', '123456789012345678901'],
              ['mixed', '12abc']) {
    my ($key, $val) = @$case;
    exchange($sock, set_req(OP_SET, $key, $val));
    exchange_is($sock, arith_req(OP_INCR, $key, 1, 0, 0, opaque => 0x55),
        [err_res(OP_INCR, ST_DELTA_BADVAL, opaque => 0x55)], "incr of '$val': DELTA_BADVAL");
}
exchange_is($sock, arith_req(OP_DECRQ, 'alpha', 1, 0, 0),
    [err_res(OP_DECRQ, ST_DELTA_BADVAL)], 'decrq of a non-number: the error is not quiet');
exchange_is($sock, set_req(OP_SET, 'lead', '  12'), [res(op => OP_SET, cas => 'set')], 'set "  12"');
exchange_is($sock, arith_req(OP_INCR, 'lead', 1, 0, 0), [res(op => OP_INCR, cas => 'set', value => u64(13))],
    'leading spaces are accepted');

# --- CAS -----------------------------------------------------------------------------------
@got = exchange($sock, req(op => OP_GET, key => 'n'));
$cas = $got[0]{cas};
exchange_is($sock, arith_req(OP_INCR, 'n', 1, 0, 0, cas => $cas + 100, opaque => 1),
    [err_res(OP_INCR, ST_EEXISTS, opaque => 1)], 'incr with a wrong CAS: EEXISTS');
exchange_is($sock, arith_req(OP_INCRQ, 'n', 1, 0, 0, cas => $cas + 100),
    [err_res(OP_INCRQ, ST_EEXISTS)], 'incrq with a wrong CAS: EEXISTS, not quiet');
@got = exchange_is($sock, arith_req(OP_INCR, 'n', 1, 0, 0, cas => $cas),
    [res(op => OP_INCR, cas => 'set', value => u64(41))], 'incr with the right CAS');
isnt($got[0]{cas}, $cas, 'and a new CAS');
exchange_is($sock, arith_req(OP_INCR, 'cas-new', 1, 3, 0, cas => 999),
    [res(op => OP_INCR, cas => 'set', value => u64(3))], 'a CAS on a missing key is ignored: the item is created');

# --- expirations -------------------------------------------------------------------------------
exchange_is($sock, arith_req(OP_INCR, 'exp5', 1, 10, 5), [res(op => OP_INCR, cas => 'set', value => u64(10))],
    'create with a 5 s expiration');
exchange_is($sock, arith_req(OP_INCR, 'n', 1, 0, 5), [res(op => OP_INCR, cas => 'set', value => u64(42))],
    'an expiration given for an existing key');
advance(4);
exchange_is($sock, req(op => OP_GET, key => 'exp5'), [get_res('10')], 'alive after 4 s');
advance(2);
exchange_is($sock, req(op => OP_GET, key => 'exp5'), [err_res(OP_GET, ST_ENOENT)], 'expired after 6 s');
exchange_is($sock, req(op => OP_GET, key => 'n'), [get_res('42')], 'an existing key keeps its own expiration');

# --- append and prepend ----------------------------------------------------------------------------
exchange_is($sock, set_req(OP_SET, 'ap', 'mid', flags => 0xabcd, exptime => 10), [res(op => OP_SET, cas => 'set')],
    'set a value with flags and a 10 s expiration');
@got = exchange_is($sock, req(op => OP_APPEND, key => 'ap', value => '-end', opaque => 4),
    [res(op => OP_APPEND, cas => 'set', opaque => 4)], 'append: success with a CAS');
$cas = $got[0]{cas};
exchange_is($sock, req(op => OP_PREPEND, key => 'ap', value => 'start-'),
    [res(op => OP_PREPEND, cas => $cas + 1)], 'prepend: success, next CAS');
exchange_is($sock, req(op => OP_APPENDQ, key => 'ap', value => '!') . req(op => OP_PREPENDQ, key => 'ap', value => '>'),
    [], 'appendq and prependq successes are silent');
exchange_is($sock, req(op => OP_GET, key => 'ap'), [get_res('>start-mid-end!', flags => 0xabcd, cas => $cas + 3)],
    'the combined value keeps the flags');
exchange_is($sock, req(op => OP_APPEND, key => 'ap', value => "\x00\r\n"), [res(op => OP_APPEND, cas => 'set')],
    'append binary bytes');
exchange_is($sock, req(op => OP_APPEND, key => 'ap', value => ''), [res(op => OP_APPEND, cas => 'set')],
    'append nothing');
exchange_is($sock, req(op => OP_GET, key => 'ap'), [get_res(">start-mid-end!\x00\r\n", flags => 0xabcd)],
    'binary data appended');
exchange_is($sock, req(op => OP_APPEND, key => 'nope', value => 'x', opaque => 6),
    [err_res(OP_APPEND, ST_NOT_STORED, opaque => 6)], 'append to a missing key: NOT_STORED');
exchange_is($sock, req(op => OP_PREPEND, key => 'nope', value => 'x'),
    [err_res(OP_PREPEND, ST_NOT_STORED)], 'prepend to a missing key: NOT_STORED');
exchange_is($sock, req(op => OP_APPENDQ, key => 'nope', value => 'x'),
    [err_res(OP_APPENDQ, ST_NOT_STORED)], 'appendq failure is not quiet');
exchange_is($sock, req(op => OP_PREPENDQ, key => 'nope', value => 'x'),
    [err_res(OP_PREPENDQ, ST_NOT_STORED)], 'prependq failure is not quiet');
exchange_is($sock, req(op => OP_GET, key => 'nope'), [err_res(OP_GET, ST_ENOENT)], 'nothing was created');

@got = exchange($sock, req(op => OP_GET, key => 'ap'));
$cas = $got[0]{cas};
exchange_is($sock, req(op => OP_APPEND, key => 'ap', value => 'x', cas => $cas + 50),
    [err_res(OP_APPEND, ST_EEXISTS)], 'append with a wrong CAS: EEXISTS');
exchange_is($sock, req(op => OP_PREPENDQ, key => 'ap', value => 'x', cas => $cas + 50),
    [err_res(OP_PREPENDQ, ST_EEXISTS)], 'prependq with a wrong CAS: EEXISTS');
exchange_is($sock, req(op => OP_APPEND, key => 'ap', value => '+', cas => $cas),
    [res(op => OP_APPEND, cas => 'set')], 'append with the right CAS');
exchange_is($sock, req(op => OP_PREPEND, key => 'nope', value => 'x', cas => 5),
    [err_res(OP_PREPEND, ST_NOT_STORED)], 'prepend with a CAS to a missing key: NOT_STORED');

exchange_is($sock, set_req(OP_SET, 'num', '5'), [res(op => OP_SET, cas => 'set')], 'set 5');
exchange_is($sock, req(op => OP_APPEND, key => 'num', value => '0'), [res(op => OP_APPEND, cas => 'set')], 'append 0');
exchange_is($sock, arith_req(OP_INCR, 'num', 1, 0, 0), [res(op => OP_INCR, cas => 'set', value => u64(51))],
    'incr sees the appended digits');

advance(9);
exchange_is($sock, req(op => OP_GETK, key => 'ap'), [res(op => OP_GETK, key => 'ap', cas => 'set',
    extras => pack('N', 0xabcd), value => ">start-mid-end!\x00\r\n+")], 'alive 9 s after the set (expires at 10 s)');
advance(2);
exchange_is($sock, req(op => OP_GET, key => 'ap'), [err_res(OP_GET, ST_ENOENT)],
    'the appended item kept the original expiration');

done_testing();
