#!/usr/bin/env perl
# Binary replies when memory is full and eviction is off (-m 2 -M), as C
# memcached 1.6.45 sends them: status 0x82 (ENOMEM) with the text error minus
# its "SERVER_ERROR " prefix, also for the quiet forms; the value is swallowed
# and the connection stays in step; a failed set removes the old value.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

my $server = new_memcached('-B binary -m 2 -M');
my $sock = $server->sock;
my $value = 'v' x 100000;

exchange_is($sock, set_req(OP_SET, 'small', 'abc'), [res(op => OP_SET, cas => 'set')], 'a small item');

# Fill the cache with 100 kB values until a set fails.
my ($stored, $failure) = (0);
for my $i (1 .. 200) {
    my @got = exchange($sock, set_req(OP_SET, "fill$i", $value, opaque => $i));
    if (@got != 1 || $got[0]{error} || $got[0]{status} != 0) {
        $failure = [$i, @got];
        last;
    }
    $stored++;
}
ok($stored > 5, "$stored values of 100 kB stored before memory ran out");
ok($failure, 'a set finally failed');
my ($n, @got) = @{ $failure // [0] };
my $want = [err_res(OP_SET, ST_ENOMEM, opaque => $n, value => 'Out of memory allocating item')];
is(show($want, @got), show($want, @$want), 'the failure: ENOMEM, body "Out of memory allocating item", opaque echoed');

exchange_is($sock, set_req(OP_SETQ, 'more', $value, opaque => 7),
    [err_res(OP_SETQ, ST_ENOMEM, opaque => 7, value => 'Out of memory allocating item')], 'setq: the same error, not quiet');
exchange_is($sock, set_req(OP_ADD, 'more', $value), [err_res(OP_ADD, ST_ENOMEM, value => 'Out of memory allocating item')],
    'add: the same error');
exchange_is($sock, req(op => OP_APPENDQ, key => 'small', value => $value),
    [err_res(OP_APPENDQ, ST_ENOMEM, value => 'Out of memory allocating item')], 'appendq of a large value: the same error');
exchange_is($sock, req(op => OP_GET, key => 'small'), [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => 'abc')],
    'the failed append left the item alone, and the connection is in step');

exchange_is($sock, req(op => OP_GET, key => 'fill1'),
    [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => $value)], 'fill1 is stored');
exchange_is($sock, set_req(OP_REPLACE, 'fill2', $value), [err_res(OP_REPLACE, ST_ENOMEM, value => 'Out of memory allocating item')],
    'a failed replace');
exchange_is($sock, req(op => OP_GETK, key => 'fill2'),
    [res(op => OP_GETK, cas => 'set', extras => pack('N', 0), key => 'fill2', value => $value)], 'keeps the old value');
exchange_is($sock, set_req(OP_SET, 'fill1', $value), [err_res(OP_SET, ST_ENOMEM, value => 'Out of memory allocating item')],
    'a failed set of an existing key');
exchange_is($sock, req(op => OP_GET, key => 'fill1'), [err_res(OP_GET, ST_ENOENT)], 'removes the old value');
exchange_is($sock, req(op => OP_NOOP, opaque => 3), [res(op => OP_NOOP, opaque => 3)], 'still in step');

done_testing();
