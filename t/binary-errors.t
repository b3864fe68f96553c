#!/usr/bin/env perl
# Binary protocol errors, byte for byte as C memcached 1.6.45: invalid
# extras/key/body lengths per opcode (EINVAL, then the connection closes),
# keys over 250 bytes, body lengths shorter than key + extras (UNKNOWN_COMMAND
# and close) or over 1 GiB (EINVAL and close), bad magic bytes (silent close),
# unknown opcodes and the SASL opcodes of a server without -S (UNKNOWN_COMMAND,
# connection kept, body swallowed), values too large (E2BIG, body swallowed),
# requests split into small pieces; the server keeps serving new connections.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

my $server = new_memcached('-B binary');
my $EOF = { error => 'eof', raw => '' };

# On a new connection, $bytes (plus the noop fence) get one error reply and
# the connection is closed: the fence is never answered.
sub closes_with {
    my ($bytes, $want, $name) = @_;
    my $s = $server->new_sock;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    exchange_is($s, $bytes, [$want, $EOF], $name);
}

# --- invalid lengths for each opcode: EINVAL, then close ---------------------------------
my $x8 = pack('NN', 0, 0);
my $x4 = pack('N', 0);
my $x20 = pack('Q>Q>N', 1, 0, 0);
my @einval = (
    ['get with extras',            req(op => OP_GET, key => 'k', extras => $x4)],
    ['get without a key',          req(op => OP_GET)],
    ['get with a value',           req(op => OP_GET, key => 'k', value => 'v')],
    ['getq with extras',           req(op => OP_GETQ, key => 'k', extras => $x4)],
    ['getk without a key',         req(op => OP_GETK)],
    ['getkq with a value',         req(op => OP_GETKQ, key => 'k', value => 'v')],
    ['set without extras',         req(op => OP_SET, key => 'k', value => 'v')],
    ['set with 4 bytes of extras', req(op => OP_SET, key => 'k', extras => $x4, value => 'v')],
    ['set without a key',          req(op => OP_SET, extras => $x8, value => 'v')],
    ['addq with 12 bytes of extras', req(op => OP_ADDQ, key => 'k', extras => $x8 . $x4)],
    ['replace without a key',      req(op => OP_REPLACE, extras => $x8)],
    ['delete with extras',         req(op => OP_DELETE, key => 'k', extras => $x4)],
    ['delete with a value',        req(op => OP_DELETE, key => 'k', value => 'v')],
    ['deleteq without a key',      req(op => OP_DELETEQ)],
    ['incr with 8 bytes of extras', req(op => OP_INCR, key => 'k', extras => $x8)],
    ['incr with a value',          req(op => OP_INCR, key => 'k', extras => $x20, value => '1')],
    ['decrq without a key',        req(op => OP_DECRQ, extras => $x20)],
    ['append with extras',         req(op => OP_APPEND, key => 'k', extras => $x4, value => 'v')],
    ['prependq without a key',     req(op => OP_PREPENDQ, value => 'v')],
    ['noop with a value',          req(op => OP_NOOP, value => 'v')],
    ['noop with a key',            req(op => OP_NOOP, key => 'k')],
    ['version with extras',        req(op => OP_VERSION, extras => $x4)],
    ['quit with a key',            req(op => OP_QUIT, key => 'k')],
    ['quitq with a value',         req(op => OP_QUITQ, value => 'v')],
    ['flush with 8 bytes of extras', req(op => OP_FLUSH, extras => $x8)],
    ['flush with a key',           req(op => OP_FLUSH, key => 'k')],
    ['flushq with a value',        req(op => OP_FLUSHQ, extras => $x4, value => 'v')],
    ['stat with extras',           req(op => OP_STAT, extras => $x4)],
    ['touch without extras',       req(op => OP_TOUCH, key => 'k')],
    ['touch without a key',        req(op => OP_TOUCH, extras => $x4)],
    ['gat with 8 bytes of extras', req(op => OP_GAT, key => 'k', extras => $x8)],
    ['gatq without a key',         req(op => OP_GATQ, extras => $x4)],
    ['gatk without extras',        req(op => OP_GATK, key => 'k')],
    ['gatkq without extras',       req(op => OP_GATKQ, key => 'k')],
    ['sasl list mechs with a key', req(op => OP_SASL_LIST, key => 'k')],
    ['sasl auth without a key',    req(op => OP_SASL_AUTH, value => 'v')],
    ['sasl step with extras',      req(op => OP_SASL_STEP, key => 'PLAIN', extras => $x4)],
);
for my $case (@einval) {
    my ($name, $bytes) = @$case;
    my $op = ord(substr($bytes, 1, 1));
    substr($bytes, 12, 4, pack('N', 0xc0ffee));    # an opaque to echo
    closes_with($bytes, err_res($op, ST_EINVAL, opaque => 0xc0ffee), "$name: EINVAL, then close");
}

# --- keys over 250 bytes ----------------------------------------------------------------------
closes_with(req(op => OP_GET, key => 'k' x 251), err_res(OP_GET, ST_EINVAL), 'get with a 251-byte key: EINVAL, close');
closes_with(req(op => OP_GETQ, key => 'k' x 251), err_res(OP_GETQ, ST_EINVAL), 'getq with a 251-byte key: not quiet');
closes_with(set_req(OP_SETQ, 'k' x 300, 'v'), err_res(OP_SETQ, ST_EINVAL), 'setq with a 300-byte key: EINVAL, close');
closes_with(req(op => OP_DELETE, key => 'k' x 251), err_res(OP_DELETE, ST_EINVAL), 'delete with a 251-byte key');
closes_with(req(op => 0x7e, key => 'k' x 251), err_res(0x7e, ST_EINVAL), 'even an unknown opcode: the key length is checked first');

# --- body lengths ---------------------------------------------------------------------------------
closes_with(req(op => OP_GET, key => 'abc', bodylen => 2, opaque => 5),
    err_res(OP_GET, ST_UNKNOWN, opaque => 5), 'body shorter than the key: UNKNOWN_COMMAND, close');
closes_with(set_req(OP_SET, 'abc', '', bodylen => 10),
    err_res(OP_SET, ST_UNKNOWN), 'body shorter than key + extras: UNKNOWN_COMMAND, close');
closes_with(req(op => OP_NOOP, key => 'k' x 251, bodylen => 0),
    err_res(OP_NOOP, ST_UNKNOWN), 'the body length is checked before the key length');
closes_with(set_req(OP_SET, 'abc', '', bodylen => 0xffffffff, opaque => 6),
    err_res(OP_SET, ST_EINVAL, opaque => 6), 'body length 4 GiB - 1: EINVAL, close, without waiting for the body');
closes_with(set_req(OP_SET, 'abc', '', bodylen => 1024 * 1024 * 1024 + 1),
    err_res(OP_SET, ST_EINVAL), 'body length 1 GiB + 1: EINVAL, close');
closes_with(req(op => 0x7f, bodylen => 1024 * 1024 * 1024 + 1),
    err_res(0x7f, ST_EINVAL), 'unknown opcode with a body over 1 GiB: EINVAL, close');

# --- earlier replies are flushed before the error, later requests dropped ---------------------------
{
    my $s = $server->new_sock;
    exchange($s, set_req(OP_SET, 'foo', 'bar'));
    exchange_is($s, req(op => OP_GETQ, key => 'foo', opaque => 1) . req(op => OP_GET, key => 'foo', opaque => 2)
        . req(op => OP_NOOP, value => 'x', opaque => 3) . req(op => OP_GET, key => 'foo', opaque => 4),
        [res(op => OP_GETQ, opaque => 1, cas => 'set', extras => pack('N', 0), value => 'bar'),
         res(op => OP_GET, opaque => 2, cas => 'set', extras => pack('N', 0), value => 'bar'),
         err_res(OP_NOOP, ST_EINVAL, opaque => 3), $EOF],
        'replies before an invalid request are sent, nothing after it');
}

# --- bad magic: silent close ---------------------------------------------------------------------------
for my $magic (0x81, 0x00, 0x7f, 0xff) {
    my $s = $server->new_sock;
    syswrite($s, req(magic => $magic, op => OP_NOOP));
    is(until_close($s), '', sprintf('magic 0x%02x as the first packet: closed without a reply', $magic));
}
{
    my $s = $server->new_sock;
    syswrite($s, req(op => OP_NOOP, opaque => 1) . req(magic => 0x81, op => OP_NOOP, opaque => 2)
        . req(op => OP_NOOP, opaque => 3));
    is(unpack('H*', until_close($s)), unpack('H*', req(magic => 0x81, op => OP_NOOP, opaque => 1)),
        'noop, then a packet with magic 0x81: the noop is answered, then the connection closes');
    $s = $server->new_sock;
    syswrite($s, "get foo\r\n");
    is(until_close($s, 0.5), '<open>', 'a 9-byte text command on a binary-only server: waits for a 24-byte header');
    syswrite($s, "get foo bar baz\r\n");
    is(until_close($s), '', 'once 24 bytes are in: bad magic, closed without a reply');
}

# --- unknown opcodes: UNKNOWN_COMMAND, connection kept ----------------------------------------------------
{
    my $s = $server->new_sock;
    for my $op (0x1f, 0x25, 0x30, 0x31, 0x3c, 0x40, 0x80, 0x89, 0xff) {
        exchange_is($s, req(op => $op, opaque => $op), [err_res($op, ST_UNKNOWN, opaque => $op)],
            sprintf('opcode 0x%02x: UNKNOWN_COMMAND "Unknown command"', $op));
    }
    exchange_is($s, req(op => OP_VERBOSITY), [err_res(OP_VERBOSITY, ST_UNKNOWN)],
        'verbosity (0x1b) is not implemented by 1.6.45: UNKNOWN_COMMAND');
    exchange_is($s, req(op => 0x50, value => 'some body bytes', opaque => 9), [err_res(0x50, ST_UNKNOWN, opaque => 9)],
        'unknown opcode with a value: the value is swallowed');
    exchange_is($s, req(op => 0x50, value => 'y' x 100000), [err_res(0x50, ST_UNKNOWN)],
        'a 100000-byte value is swallowed too');
    # C swallows "body length" bytes counted from after the extras and key, so
    # a key or extras make it eat that many bytes more. Pad to stay in step.
    exchange_is($s, req(op => 0x50, key => 'abc', value => 'vv') . 'PAD', [err_res(0x50, ST_UNKNOWN)],
        'unknown opcode with a key: swallows key-length bytes past the body');
    exchange_is($s, req(op => OP_VERBOSITY, extras => pack('N', 1)) . 'PADS', [err_res(OP_VERBOSITY, ST_UNKNOWN)],
        'verbosity with 4 bytes of extras: 4 bytes past the body are swallowed');
    exchange_is($s, req(op => 0x50, extras => 'ee', key => 'kkk', value => 'v') . '12345',
        [err_res(0x50, ST_UNKNOWN)], 'extras and key: extras + key bytes past the body are swallowed');
    exchange_is($s, req(op => OP_GET, key => 'foo'), [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => 'bar')],
        'still in step afterwards');

    # Without -S the three SASL opcodes are unknown commands.
    exchange_is($s, req(op => OP_SASL_LIST, opaque => 1), [err_res(OP_SASL_LIST, ST_UNKNOWN, opaque => 1)],
        'sasl list mechs: UNKNOWN_COMMAND');
    exchange_is($s, req(op => OP_SASL_AUTH, key => 'PLAIN', value => "\0user\0pass", opaque => 2),
        [err_res(OP_SASL_AUTH, ST_UNKNOWN, opaque => 2)], 'sasl auth: UNKNOWN_COMMAND, the data is swallowed exactly');
    exchange_is($s, req(op => OP_SASL_STEP, key => 'PLAIN', value => 'abc', opaque => 3),
        [err_res(OP_SASL_STEP, ST_UNKNOWN, opaque => 3)], 'sasl step: UNKNOWN_COMMAND');
    exchange_is($s, req(op => OP_SASL_AUTH, key => 'X' x 200, value => 'z' x 5000),
        [err_res(OP_SASL_AUTH, ST_UNKNOWN)], 'sasl auth with a long mechanism and data');
    exchange_is($s, req(op => OP_GET, key => 'foo'), [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => 'bar')],
        'still in step after the SASL opcodes');
}

# --- values too large --------------------------------------------------------------------------------------
{
    my $s = $server->new_sock;
    # With the default -I 1m, key "big", flags 0: 1048514 bytes is the largest value.
    exchange_is($s, set_req(OP_SET, 'big', 'a' x 1048514), [res(op => OP_SET, cas => 'set')],
        'a 1048514-byte value fits');
    exchange_is($s, req(op => OP_GET, key => 'big'),
        [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => 'a' x 1048514)], 'and reads back');
    exchange_is($s, set_req(OP_SET, 'big', 'b' x 1048515, opaque => 3), [err_res(OP_SET, ST_E2BIG, opaque => 3)],
        'one byte more: E2BIG "Too large.", the value is swallowed');
    exchange_is($s, req(op => OP_GET, key => 'big'), [err_res(OP_GET, ST_ENOENT)],
        'a set that fails as too large removes the old value');
    exchange_is($s, set_req(OP_SET, 'big', 'c' x 1048510, flags => 1), [res(op => OP_SET, cas => 'set')],
        'non-zero flags take 4 bytes: 1048510 bytes fit');
    exchange_is($s, set_req(OP_SET, 'big2', 'c' x 1048511, flags => 1), [err_res(OP_SET, ST_E2BIG)],
        '1048511 bytes with flags do not');
    exchange_is($s, set_req(OP_ADD, 'big', 'd' x (2 * 1024 * 1024)), [err_res(OP_ADD, ST_E2BIG)], 'add too large: E2BIG');
    exchange_is($s, set_req(OP_REPLACEQ, 'big', 'd' x (2 * 1024 * 1024)), [err_res(OP_REPLACEQ, ST_E2BIG)],
        'replaceq too large: E2BIG, not quiet');
    exchange_is($s, req(op => OP_GET, key => 'big'),
        [res(op => OP_GET, cas => 'set', extras => pack('N', 1), value => 'c' x 1048510)],
        'failed add/replace keep the old value');
    exchange_is($s, set_req(OP_SETQ, 'big', 'e' x (2 * 1024 * 1024)), [err_res(OP_SETQ, ST_E2BIG)],
        'setq too large: E2BIG, not quiet');
    exchange_is($s, req(op => OP_GET, key => 'big'), [err_res(OP_GET, ST_ENOENT)], 'and the old value is gone');
    exchange_is($s, req(op => OP_APPEND, key => 'foo', value => 'f' x (2 * 1024 * 1024)), [err_res(OP_APPEND, ST_E2BIG)],
        'append of a value too large by itself: E2BIG');
    exchange($s, set_req(OP_SET, 'nearly', 'g' x 1048000));
    exchange_is($s, req(op => OP_APPEND, key => 'nearly', value => 'h' x 1000), [err_res(OP_APPEND, ST_NOT_STORED)],
        'append that would make the item too large: NOT_STORED');
    exchange_is($s, req(op => OP_PREPENDQ, key => 'nearly', value => 'h' x 1000), [err_res(OP_PREPENDQ, ST_NOT_STORED)],
        'prependq likewise, not quiet');
    exchange_is($s, req(op => OP_GET, key => 'foo'), [res(op => OP_GET, cas => 'set', extras => pack('N', 0), value => 'bar')],
        'the connection is still in step');
}

# --- requests in small pieces ----------------------------------------------------------------------------------
{
    my $s = $server->new_sock;
    my $bytes = set_req(OP_SET, 'split', 'value', flags => 3, opaque => 1) . req(op => OP_GETK, key => 'split', opaque => 2)
        . req(op => OP_NOOP, opaque => FENCE_OPAQUE);
    for my $byte (split(//, $bytes)) {
        syswrite($s, $byte);
        MemcachedTest::sleep(0.002);
    }
    my @got;
    while (1) {
        my $p = read_packet($s);
        last if $p->{error} || ($p->{op} == OP_NOOP && $p->{opaque} == FENCE_OPAQUE);
        push(@got, $p);
    }
    my $want = [res(op => OP_SET, opaque => 1, cas => 'set'),
        res(op => OP_GETK, opaque => 2, cas => 'set', extras => pack('N', 3), key => 'split', value => 'value')];
    is(show($want, @got), show($want, @$want), 'requests sent one byte at a time');
}

# --- the server survives all of this ------------------------------------------------------------------------------
{
    my $s = $server->new_sock;
    my @got = exchange($s, req(op => OP_VERSION));
    like($got[0]{value} // '', qr/^(?:1\.6\.45|UNKNOWN)$/, 'a new connection gets the version');
    ok(MemcachedTest::is_running($server->pid), 'the server is still running');
}

done_testing();
