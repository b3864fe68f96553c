#!/usr/bin/env perl
# Binary "stat" (0x10), byte for byte as C memcached 1.6.45: one packet per
# statistic (key = name, value = text) ended by an empty packet, the same
# names in the same order as the text protocol's "stats", the sub-groups
# (settings, items, slabs, sizes, detail on/off/dump, reset) and the prefix
# matching C does on some of them, unknown groups (ENOENT), and the exact
# counters (cmd_get, get_hits, cas_badval, touch_hits, ...) after a known
# sequence of binary commands.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

# The default protocol setting (auto) lets a text connection ask too.
my $server = new_memcached();
my $sock = $server->sock;
my $text = $server->new_sock;

# All packets of a binary stat request up to and including the empty one.
sub bin_stats {
    my ($group, $opaque) = @_;
    syswrite($sock, req(op => OP_STAT, key => $group // '', opaque => $opaque // 0));
    my @got;
    while (1) {
        my $p = read_packet($sock);
        push(@got, $p);
        last if $p->{error} || $p->{status} != 0 || ($p->{keylen} == 0 && $p->{bodylen} == 0);
    }
    return @got;
}

# Names and values of a text "stats [group]" in order.
sub text_stats {
    my ($group) = @_;
    print $text 'stats' . (defined $group ? " $group" : '') . "\r\n";
    my @pairs;
    while (defined(my $line = <$text>)) {
        last if $line eq "END\r\n";
        if ($line !~ /^STAT (\S+) (.*)\r\n\z/) {
            push(@pairs, ['BAD LINE', $line]);
            last;
        }
        push(@pairs, [$1, $2]);
    }
    return @pairs;
}

# Check the framing of a stat reply; return its [name, value] pairs.
sub check_framing {
    my ($name, $opaque, @got) = @_;
    my $last = pop(@got);
    is(show(undef, $last), show(undef, res(op => OP_STAT, opaque => $opaque)),
        "$name: ends with an empty packet echoing the opaque");
    my @bad = grep {
        $_->{error} || $_->{magic} != 0x81 || $_->{op} != OP_STAT || $_->{status} != 0
        || $_->{extlen} != 0 || $_->{datatype} != 0 || $_->{cas} != 0 || $_->{opaque} != $opaque
        || $_->{keylen} == 0
    } @got;
    is(scalar(@bad), 0, "$name: every statistic is its own packet with a key, status 0, no extras, CAS 0")
        or diag(show(undef, @bad));
    return map { [$_->{key}, $_->{value}] } @got;
}

# --- general statistics ------------------------------------------------------------------
my @pairs = check_framing('stat', 0x5151, bin_stats('', 0x5151));
my @text = text_stats();
is(join(' ', map { $_->[0] } @pairs), join(' ', map { $_->[0] } @text),
    'the same names in the same order as the text protocol\'s "stats"');
my %bin = map { @$_ } @pairs;
like($bin{version} // '', qr/^(?:1\.6\.45|UNKNOWN)$/, 'version as a statistic');
cmp_ok(scalar(@pairs), '>', 50, 'many statistics');
ok(!(grep { $_->[1] =~ /[\r\n]/ } @pairs), 'values carry no line endings');

# --- counters after a known sequence ---------------------------------------------------------
print $text "debugtime p\r\n";
is(scalar(<$text>), "OK\r\n", 'pause the clock');
print $text "stats reset\r\n";
is(scalar(<$text>), "RESET\r\n", 'text stats reset');

my @got = exchange($sock, set_req(OP_SET, 'a', '1') . set_req(OP_SETQ, 'b', '2') . set_req(OP_ADD, 'a', 'x'));
is(scalar(@got), 2, 'set, setq, add (fails)');
my $cas_a = $got[0]{cas};
exchange($sock, req(op => OP_GET, key => 'a') . req(op => OP_GETK, key => 'b') . req(op => OP_GETQ, key => 'zz')
    . req(op => OP_GETK, key => 'zz') . req(op => OP_GETKQ, key => 'a'));
exchange($sock, set_req(OP_SET, 'a', 'x', cas => $cas_a + 1000) . set_req(OP_SET, 'zz', 'x', cas => 5)
    . set_req(OP_SET, 'a', '10', cas => $cas_a));
exchange($sock, req(op => OP_TOUCH, key => 'a', extras => pack('N', 0)) . req(op => OP_TOUCH, key => 'zz', extras => pack('N', 0))
    . req(op => OP_GAT, key => 'b', extras => pack('N', 0)) . req(op => OP_GATQ, key => 'zz', extras => pack('N', 0))
    . req(op => OP_GATKQ, key => 'a', extras => pack('N', 0)));
exchange($sock, req(op => OP_DELETE, key => 'b') . req(op => OP_DELETEQ, key => 'zz') . req(op => OP_DELETE, key => 'b'));
exchange($sock, arith_req(OP_INCR, 'a', 1, 0, 0) . arith_req(OP_INCRQ, 'n', 1, 5, 0) . arith_req(OP_INCR, 'zz', 1, 0, 0xffffffff)
    . arith_req(OP_DECR, 'a', 3, 0, 0) . arith_req(OP_DECRQ, 'zz', 1, 0, 0xffffffff) . arith_req(OP_DECR, 'n2', 1, 7, 0));
exchange($sock, req(op => OP_APPEND, key => 'a', value => '0') . req(op => OP_PREPEND, key => 'zz', value => '0'));
exchange($sock, req(op => 0x50) . req(op => OP_VERSION) . req(op => OP_SASL_LIST));
# An item older than a flush is found but counted as flushed (and a miss);
# one stored in the flush's own second is unlinked right away.
exchange($sock, set_req(OP_SET, 'c', 'v'));
print $text "debugtime 2\r\n";
is(scalar(<$text>), "OK\r\n", 'the clock moves 2 s');
exchange($sock, set_req(OP_SET, 'd', 'v') . req(op => OP_FLUSH) . req(op => OP_GET, key => 'c') . req(op => OP_GET, key => 'd')
    . req(op => OP_GAT, key => 'c', extras => pack('N', 0)));

my %want = (
    cmd_get => 7, get_hits => 3, get_misses => 4, get_expired => 0, get_flushed => 1,
    cmd_set => 10, cmd_touch => 6, touch_hits => 3, touch_misses => 3, cmd_flush => 1,
    delete_hits => 1, delete_misses => 2, incr_hits => 1, incr_misses => 1,
    decr_hits => 1, decr_misses => 1, cas_hits => 1, cas_misses => 1, cas_badval => 1,
    auth_cmds => 0, auth_errors => 0,
);
my %now = map { @$_ } check_framing('stat after the sequence', 0, bin_stats(''));
my %now_text = map { @$_ } text_stats();
for my $k (sort keys %want) {
    is($now{$k}, $want{$k}, "binary stat $k = $want{$k}");
    is($now_text{$k}, $want{$k}, "text stats $k agrees");
}

# --- reset ----------------------------------------------------------------------------------------------
is(show(undef, bin_stats('reset', 9)), show(undef, res(op => OP_STAT, opaque => 9)),
    'stat reset: only the empty packet');
%now = map { @$_ } check_framing('stat after reset', 0, bin_stats(''));
is(join(',', map { $now{$_} } qw(cmd_get get_hits cmd_set cmd_touch cas_hits incr_hits)), '0,0,0,0,0,0',
    'the counters are zero again');
exchange($sock, req(op => OP_GET, key => 'a'));
is(show(undef, bin_stats('resetting-anything', 1)), show(undef, res(op => OP_STAT, opaque => 1)),
    'any group starting with "reset" resets (C compares only the first 5 bytes)');
%now = map { @$_ } text_stats();
is($now{cmd_get}, 0, 'and the counters were reset');

# --- groups ---------------------------------------------------------------------------------------------
exchange($sock, set_req(OP_SET, 'item1', 'x' x 100) . set_req(OP_SET, 'item2', 'x' x 5000));
for my $group (qw(settings items slabs sizes)) {
    my @b = check_framing("stat $group", 0x77, bin_stats($group, 0x77));
    my @t = text_stats($group);
    is(join(' ', map { $_->[0] } @b), join(' ', map { $_->[0] } @t),
        "stat $group: the same names in the same order as the text protocol");
}
{
    my %settings = map { @$_ } check_framing('stat settingsXYZ', 0, bin_stats('settingsXYZ'));
    is($settings{binding_protocol}, 'auto-negotiate', '"settings" is matched by prefix too; binding_protocol auto-negotiate');
    is($settings{item_size_max}, 1048576, 'item_size_max');
}
{
    my %items = map { @$_ } check_framing('stat items', 0, bin_stats('items'));
    ok((grep { /^items:\d+:number\z/ } keys %items), 'stat items names the slab classes: items:N:number');
}
for my $group ('itemsx', 'item', 'conns', 'extstore', 'proxy', 'nosuch') {
    exchange_is($sock, req(op => OP_STAT, key => $group, opaque => 3), [err_res(OP_STAT, ST_ENOENT, opaque => 3)],
        "stat $group: ENOENT \"Not found\", connection kept");
}

# --- detail ------------------------------------------------------------------------------------------------
is(show(undef, bin_stats('detail dump', 2)),
    show(undef, res(op => OP_STAT, opaque => 2, key => 'detailed', value => "END\r\n"), res(op => OP_STAT, opaque => 2)),
    'stat detail dump with nothing recorded: one "detailed" packet holding the text dump, then the end');
is(show(undef, bin_stats('detail on', 3)), show(undef, res(op => OP_STAT, opaque => 3)), 'stat detail on: only the end packet');
exchange($sock, set_req(OP_SET, 'pfx:one', '1') . req(op => OP_GET, key => 'pfx:one') . req(op => OP_GET, key => 'pfx:two')
    . req(op => OP_DELETE, key => 'pfx:one') . req(op => OP_GET, key => 'nopfx'));
is(show(undef, bin_stats('detail dump', 4)),
    show(undef, res(op => OP_STAT, opaque => 4, key => 'detailed',
        value => "PREFIX pfx get 2 hit 1 set 1 del 1\r\nEND\r\n"), res(op => OP_STAT, opaque => 4)),
    'stat detail dump after binary commands on prefixed keys');
print $text "stats detail dump\r\n";
is(scalar(<$text>) . scalar(<$text>), "PREFIX pfx get 2 hit 1 set 1 del 1\r\nEND\r\n", 'the text protocol shows the same dump');
is(show(undef, bin_stats('detail off', 5)), show(undef, res(op => OP_STAT, opaque => 5)), 'stat detail off');
exchange_is($sock, req(op => OP_STAT, key => 'detail what'), [err_res(OP_STAT, ST_ENOENT)], 'stat detail with another word: ENOENT');
exchange_is($sock, req(op => OP_STAT, key => 'detail'), [err_res(OP_STAT, ST_ENOENT)], 'stat detail alone: ENOENT');

# --- pipelining ------------------------------------------------------------------------------------------------
{
    syswrite($sock, req(op => OP_STAT, key => 'reset', opaque => 1) . req(op => OP_STAT, key => 'sizes', opaque => 2)
        . req(op => OP_NOOP, opaque => 3));
    my @ops;
    while (1) {
        my $p = read_packet($sock);
        last if $p->{error};
        push(@ops, sprintf('%02x:%d:%s', $p->{op}, $p->{opaque}, $p->{key}));
        last if $p->{op} == OP_NOOP;
    }
    is("@ops", '10:1: 10:2:sizes_status 10:2: 0a:3:', 'pipelined stat groups answer in order, each with its own end packet');
}

done_testing();
