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

# --- binary protocol helpers ----------------------------------------------
# Header (24 bytes, network order): magic, opcode, key length, extras length,
# data type, vbucket (request) / status (response), total body length,
# opaque, CAS. Body: extras, then key, then value.

use constant {
    OP_GET => 0x00, OP_SET => 0x01, OP_ADD => 0x02, OP_REPLACE => 0x03,
    OP_DELETE => 0x04, OP_INCR => 0x05, OP_DECR => 0x06, OP_QUIT => 0x07,
    OP_FLUSH => 0x08, OP_GETQ => 0x09, OP_NOOP => 0x0a, OP_VERSION => 0x0b,
    OP_GETK => 0x0c, OP_GETKQ => 0x0d, OP_APPEND => 0x0e, OP_PREPEND => 0x0f,
    OP_STAT => 0x10, OP_SETQ => 0x11, OP_ADDQ => 0x12, OP_REPLACEQ => 0x13,
    OP_DELETEQ => 0x14, OP_INCRQ => 0x15, OP_DECRQ => 0x16, OP_QUITQ => 0x17,
    OP_FLUSHQ => 0x18, OP_APPENDQ => 0x19, OP_PREPENDQ => 0x1a,
    OP_VERBOSITY => 0x1b, OP_TOUCH => 0x1c, OP_GAT => 0x1d, OP_GATQ => 0x1e,
    OP_SASL_LIST => 0x20, OP_SASL_AUTH => 0x21, OP_SASL_STEP => 0x22,
    OP_GATK => 0x23, OP_GATKQ => 0x24,
};
use constant {
    ST_OK => 0x00, ST_ENOENT => 0x01, ST_EEXISTS => 0x02, ST_E2BIG => 0x03,
    ST_EINVAL => 0x04, ST_NOT_STORED => 0x05, ST_DELTA_BADVAL => 0x06,
    ST_AUTH_ERROR => 0x20, ST_UNKNOWN => 0x81, ST_ENOMEM => 0x82,
};
# Error bodies C writes for each status.
my %ERRTEXT = (
    ST_ENOENT() => 'Not found', ST_EEXISTS() => 'Data exists for key.',
    ST_E2BIG() => 'Too large.', ST_EINVAL() => 'Invalid arguments',
    ST_NOT_STORED() => 'Not stored.',
    ST_DELTA_BADVAL() => 'Non-numeric server-side value for incr or decr',
    ST_AUTH_ERROR() => 'Auth failure.', ST_UNKNOWN() => 'Unknown command',
);
use constant FENCE_OPAQUE => 0xfe11cefe;

# A request packet. Lengths default to the real ones; any header field can be
# overridden to build malformed packets.
sub req {
    my (%r) = @_;
    my ($ext, $key, $val) = map { $_ // '' } @r{qw(extras key value)};
    return pack('CCnCCnNNQ>',
        $r{magic} // 0x80, $r{op},
        $r{keylen} // length($key), $r{extlen} // length($ext),
        $r{datatype} // 0, $r{vbucket} // 0,
        $r{bodylen} // length($ext) + length($key) + length($val),
        $r{opaque} // 0, $r{cas} // 0) . $ext . $key . $val;
}

sub set_req {
    my ($op, $key, $val, %o) = @_;
    return req(op => $op, key => $key, value => $val,
        extras => pack('NN', $o{flags} // 0, $o{exptime} // 0), %o);
}

sub arith_req {
    my ($op, $key, $delta, $initial, $exptime, %o) = @_;
    return req(op => $op, key => $key,
        extras => pack('Q>Q>N', $delta, $initial, $exptime), %o);
}

# $n bytes from $sock; returns (bytes, undef) or (partial, 'eof'|'timeout').
sub read_n {
    my ($sock, $n, $wait) = @_;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    while (length($buf) < $n) {
        return ($buf, 'timeout') unless $sel->can_read($wait // 5);
        my $got = sysread($sock, my $chunk, $n - length($buf));
        return ($buf, 'eof') unless $got;
        $buf .= $chunk;
    }
    return ($buf, undef);
}

# One response packet as a hash, or { error => 'eof'|'timeout', raw => ... }.
sub read_packet {
    my ($sock, $wait) = @_;
    my ($hdr, $err) = read_n($sock, 24, $wait);
    return { error => $err, raw => $hdr } if $err;
    my %p;
    @p{qw(magic op keylen extlen datatype status bodylen opaque cas)}
        = unpack('CCnCCnNNQ>', $hdr);
    my ($body, $err2) = read_n($sock, $p{bodylen}, $wait);
    return { error => $err2, raw => $hdr . $body } if $err2;
    $p{extras} = substr($body, 0, $p{extlen});
    $p{key} = substr($body, $p{extlen}, $p{keylen});
    $p{value} = substr($body, $p{extlen} + $p{keylen});
    $p{raw} = $hdr . $body;
    return \%p;
}

# Send $bytes plus a noop fence; return the packets answered before the
# fence's reply (ending with an error entry if the stream breaks).
sub exchange {
    my ($sock, $bytes) = @_;
    syswrite($sock, $bytes . req(op => OP_NOOP, opaque => FENCE_OPAQUE));
    my @got;
    while (1) {
        my $p = read_packet($sock);
        if ($p->{error}) { push(@got, $p); last }
        last if $p->{op} == OP_NOOP && $p->{opaque} == FENCE_OPAQUE;
        push(@got, $p);
    }
    return @got;
}

# Readable form of packets for comparisons. An expected packet may say
# cas => 'set' (any non-zero CAS) instead of a number.
sub show {
    my ($want, @packets) = @_;
    my @lines;
    for my $i (0 .. $#packets) {
        my $p = $packets[$i];
        if ($p->{error}) {
            push(@lines, "<$p->{error}" . (length $p->{raw} ? ' after ' . unpack('H*', $p->{raw}) : '') . '>');
            next;
        }
        my $cas = $p->{cas};
        my $w = $want && $want->[$i];
        $cas = 'set' if $w && defined $w->{cas} && $w->{cas} eq 'set' && $cas;
        my $val = $p->{value};
        $val = length($val) . ' bytes ' . substr(unpack('H*', $val), 0, 16) . '...' if length($val) > 80;
        $val =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
        (my $key = $p->{key}) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
        push(@lines, sprintf('magic=%02x op=%02x status=%04x dt=%d opaque=%08x cas=%s extras=[%s] key=[%s] value=[%s]',
            $p->{magic}, $p->{op}, $p->{status}, $p->{datatype}, $p->{opaque}, $cas,
            unpack('H*', $p->{extras}), $key, $val));
    }
    return join("\n", @lines) . "\n";
}

# An expected response packet (magic 0x81, raw data type).
sub res {
    my (%r) = @_;
    return { magic => 0x81, datatype => 0, status => $r{status} // 0,
        opaque => $r{opaque} // 0, cas => $r{cas} // 0,
        map({ $_ => $r{$_} // '' } qw(extras key value)), op => $r{op} };
}

# The error reply C sends for $status (body = fixed text, no extras or key).
sub err_res {
    my ($op, $status, %r) = @_;
    return res(op => $op, status => $status, value => $ERRTEXT{$status}, %r);
}

# Compare what $bytes (plus the fence) produce with the expected packets.
sub exchange_is {
    my ($sock, $bytes, $want, $name) = @_;
    my @got = exchange($sock, $bytes);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(show($want, @got), show($want, @$want), $name);
    return @got;
}

# Everything the server sends until it closes the connection, or
# "<open>" appended if it stays open and silent for $wait seconds.
sub until_close {
    my ($sock, $wait) = @_;
    my ($data, $sel) = ('', IO::Select->new($sock));
    while ($sel->can_read($wait // 3)) {
        my $n = sysread($sock, my $chunk, 65536);
        return $data unless $n;
        $data .= $chunk;
    }
    return $data . '<open>';
}
# ---------------------------------------------------------------------------
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
