#!/usr/bin/env perl
# Binary touch and get-and-touch (gat, gatq, gatk, gatkq), expiration times
# (relative, absolute, 0xffffffff), and flush/flushq with and without a delay
# or when disabled with -F, byte for byte as C memcached 1.6.45. The server
# clock is paused (debugtime over a text connection) so expirations are exact.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

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

sub touch_req { my ($op, $key, $exp, %o) = @_; return req(op => $op, key => $key, extras => pack('N', $exp), %o) }
sub hit {
    my ($op, $key, $value, $flags, $cas, %o) = @_;
    return res(op => $op, cas => $cas, extras => pack('N', $flags), value => $value, %o);
}

# --- touch -------------------------------------------------------------------------
my @got = exchange_is($sock, set_req(OP_SET, 't1', 'value1', flags => 5), [res(op => OP_SET, cas => 'set')], 'set t1');
my $cas = $got[0]{cas};
exchange_is($sock, touch_req(OP_TOUCH, 't1', 3, opaque => 0x1234),
    [res(op => OP_TOUCH, opaque => 0x1234, cas => $cas, extras => pack('N', 5))],
    'touch hit: flags in the extras, no value, the unchanged CAS');
exchange_is($sock, touch_req(OP_TOUCH, 'nokey', 3, opaque => 0x99),
    [err_res(OP_TOUCH, ST_ENOENT, opaque => 0x99)], 'touch miss: ENOENT "Not found"');
advance(2);
exchange_is($sock, req(op => OP_GET, key => 't1'), [hit(OP_GET, 't1', 'value1', 5, $cas)], 'alive after 2 s');
advance(1);
exchange_is($sock, req(op => OP_GET, key => 't1'), [err_res(OP_GET, ST_ENOENT)], 'the touch gave it 3 s');
exchange_is($sock, touch_req(OP_TOUCH, 't1', 3), [err_res(OP_TOUCH, ST_ENOENT)], 'an expired item cannot be touched');

# --- gat and friends -------------------------------------------------------------------
@got = exchange($sock, set_req(OP_SET, 'g1', 'gv', flags => 0x10203040, exptime => 2));
$cas = $got[0]{cas};
exchange_is($sock, touch_req(OP_GAT, 'g1', 10, opaque => 1),
    [hit(OP_GAT, 'g1', 'gv', 0x10203040, $cas, opaque => 1)], 'gat hit: flags, value and CAS, like get');
exchange_is($sock, touch_req(OP_GATK, 'g1', 10, opaque => 2),
    [hit(OP_GATK, 'g1', 'gv', 0x10203040, $cas, opaque => 2, key => 'g1')], 'gatk hit: also the key');
exchange_is($sock, touch_req(OP_GATQ, 'g1', 10, opaque => 3),
    [hit(OP_GATQ, 'g1', 'gv', 0x10203040, $cas, opaque => 3)], 'gatq hit: answered');
exchange_is($sock, touch_req(OP_GATKQ, 'g1', 10, opaque => 4),
    [hit(OP_GATKQ, 'g1', 'gv', 0x10203040, $cas, opaque => 4, key => 'g1')], 'gatkq hit: answered with the key');
exchange_is($sock, touch_req(OP_GAT, 'nokey', 10, opaque => 5),
    [err_res(OP_GAT, ST_ENOENT, opaque => 5)], 'gat miss: ENOENT "Not found"');
exchange_is($sock, touch_req(OP_GATK, 'nokey', 10, opaque => 6),
    [res(op => OP_GATK, status => ST_ENOENT, opaque => 6, key => 'nokey')], 'gatk miss: ENOENT with the key, no text');
exchange_is($sock, touch_req(OP_GATQ, 'nokey', 10) . touch_req(OP_GATKQ, 'nokey', 10), [],
    'gatq and gatkq misses are silent');
advance(5);
exchange_is($sock, req(op => OP_GET, key => 'g1'), [hit(OP_GET, 'g1', 'gv', 0x10203040, $cas)],
    'gat extended the 2 s expiration');
exchange_is($sock, touch_req(OP_GATQ, 'g1', 0), [hit(OP_GATQ, 'g1', 'gv', 0x10203040, $cas)], 'gatq with 0: no expiration');
advance(100);
exchange_is($sock, req(op => OP_GET, key => 'g1'), [hit(OP_GET, 'g1', 'gv', 0x10203040, $cas)], 'still there 100 s later');

exchange_is($sock,
    touch_req(OP_GATKQ, 'nokey', 1, opaque => 1) . touch_req(OP_GATKQ, 'g1', 0, opaque => 2)
    . touch_req(OP_GATQ, 'nokey', 1, opaque => 3) . touch_req(OP_GATQ, 'g1', 0, opaque => 4),
    [hit(OP_GATKQ, 'g1', 'gv', 0x10203040, $cas, opaque => 2, key => 'g1'),
     hit(OP_GATQ, 'g1', 'gv', 0x10203040, $cas, opaque => 4)],
    'pipelined quiet gats: only the hits');

# --- expiration times --------------------------------------------------------------------
exchange($sock, set_req(OP_SET, 'rel', 'r', exptime => 10));
exchange($sock, set_req(OP_SET, 'far', 'f', exptime => 0xffffffff));
exchange($sock, set_req(OP_SET, 'past', 'p', exptime => 2592001));
exchange($sock, set_req(OP_SET, 'month', 'm', exptime => 2592000));
exchange_is($sock, req(op => OP_GET, key => 'past'), [err_res(OP_GET, ST_ENOENT)],
    'an expiration over 30 days is an absolute time: one in the past expires at once');
exchange_is($sock, req(op => OP_GET, key => 'far'), [hit(OP_GET, 'far', 'f', 0, 'set')],
    'expiration 0xffffffff is unsigned: far in the future, not negative');
exchange_is($sock, req(op => OP_GET, key => 'month'), [hit(OP_GET, 'month', 'm', 0, 'set')],
    'exactly 30 days is still relative');
advance(9);
exchange_is($sock, req(op => OP_GET, key => 'rel'), [hit(OP_GET, 'rel', 'r', 0, 'set')], 'relative 10 s: alive at 9 s');
advance(1);
exchange_is($sock, req(op => OP_GET, key => 'rel'), [err_res(OP_GET, ST_ENOENT)], 'relative 10 s: gone at 10 s');
exchange_is($sock, touch_req(OP_TOUCH, 'far', 2592001), [res(op => OP_TOUCH, cas => 'set', extras => pack('N', 0))],
    'touch with a past absolute time still answers as a hit');
exchange_is($sock, req(op => OP_GET, key => 'far'), [err_res(OP_GET, ST_ENOENT)], 'and the item is then expired');
exchange_is($sock, touch_req(OP_GAT, 'month', 2592001), [hit(OP_GAT, 'month', 'm', 0, 'set')],
    'gat with a past absolute time returns the value');
exchange_is($sock, req(op => OP_GET, key => 'month'), [err_res(OP_GET, ST_ENOENT)], 'and then it is expired');

# The server clock runs $now s ahead of the wall clock (debugtime).
my $abs = time() + $now + 1000;
exchange($sock, set_req(OP_SET, 'abs', 'a', exptime => $abs));
advance(900);
exchange_is($sock, req(op => OP_GET, key => 'abs'), [hit(OP_GET, 'abs', 'a', 0, 'set')], 'absolute time 1000 s ahead: alive after 900 s');
advance(200);
exchange_is($sock, req(op => OP_GET, key => 'abs'), [err_res(OP_GET, ST_ENOENT)], 'and gone after 1100 s');

# --- flush --------------------------------------------------------------------------------
exchange($sock, set_req(OP_SET, 'f1', 'v') . set_req(OP_SET, 'f2', 'v'));
exchange_is($sock, req(op => OP_FLUSH, opaque => 0x77), [res(op => OP_FLUSH, opaque => 0x77)],
    'flush: empty success reply, CAS 0');
exchange_is($sock, req(op => OP_GET, key => 'f1') . req(op => OP_GET, key => 'f2'),
    [err_res(OP_GET, ST_ENOENT), err_res(OP_GET, ST_ENOENT)], 'everything is gone');
exchange($sock, set_req(OP_SET, 'f3', 'v'));
exchange_is($sock, req(op => OP_GET, key => 'f3'), [hit(OP_GET, 'f3', 'v', 0, 'set')], 'items stored after a flush live');
exchange_is($sock, req(op => OP_FLUSHQ, opaque => 1), [], 'flushq: silent');
exchange_is($sock, req(op => OP_GET, key => 'f3'), [err_res(OP_GET, ST_ENOENT)], 'flushq flushed');
exchange($sock, set_req(OP_SET, 'f4', 'v'));
exchange_is($sock, req(op => OP_FLUSH, extras => pack('N', 0)), [res(op => OP_FLUSH)], 'flush with a zero delay in extras');
exchange_is($sock, req(op => OP_GET, key => 'f4'), [err_res(OP_GET, ST_ENOENT)], 'flushes at once');

advance(1);
exchange($sock, set_req(OP_SET, 'd1', 'v'));
exchange_is($sock, req(op => OP_FLUSH, extras => pack('N', 2)), [res(op => OP_FLUSH)], 'flush with a 2 s delay');
exchange_is($sock, req(op => OP_GET, key => 'd1'), [hit(OP_GET, 'd1', 'v', 0, 'set')], 'nothing flushed yet');
exchange($sock, set_req(OP_SET, 'd2', 'v'));
advance(1);
exchange_is($sock, req(op => OP_GET, key => 'd1') . req(op => OP_GET, key => 'd2'),
    [err_res(OP_GET, ST_ENOENT), err_res(OP_GET, ST_ENOENT)],
    'one second later, items stored before or after the flush are gone (the cut-off is delay - 1)');
exchange($sock, set_req(OP_SET, 'd3', 'v'));
exchange_is($sock, req(op => OP_GET, key => 'd3'), [err_res(OP_GET, ST_ENOENT)],
    'an item stored in the cut-off second is flushed too');
advance(1);
exchange($sock, set_req(OP_SET, 'd4', 'v'));
exchange_is($sock, req(op => OP_GET, key => 'd4'), [hit(OP_GET, 'd4', 'v', 0, 'set')], 'after the cut-off, items live');
exchange_is($sock, req(op => OP_FLUSHQ, extras => pack('N', 5)), [], 'flushq with a delay: silent');
exchange_is($sock, req(op => OP_GET, key => 'd4'), [hit(OP_GET, 'd4', 'v', 0, 'set')], 'not flushed yet');
advance(4);
exchange_is($sock, req(op => OP_GET, key => 'd4'), [err_res(OP_GET, ST_ENOENT)], 'flushed after delay - 1 s');

# --- flush disabled -----------------------------------------------------------------------------
{
    my $noflush = new_memcached('-F');
    my $s = $noflush->sock;
    exchange($s, set_req(OP_SET, 'keep', 'v'));
    exchange_is($s, req(op => OP_FLUSH, opaque => 3), [err_res(OP_FLUSH, ST_AUTH_ERROR, opaque => 3)],
        'with -F, flush answers AUTH_ERROR "Auth failure."');
    exchange_is($s, req(op => OP_FLUSHQ, extras => pack('N', 0)), [err_res(OP_FLUSHQ, ST_AUTH_ERROR)],
        'flushq too, not quietly');
    exchange_is($s, req(op => OP_GET, key => 'keep'), [hit(OP_GET, 'keep', 'v', 0, 'set')], 'nothing was flushed');
}

done_testing();
