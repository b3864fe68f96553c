#!/usr/bin/env perl
# Values on flash (extstore): they leave memory as their items idle, come back for text,
# meta and binary gets, in order within a multiget that mixes memory and flash, keep their
# CAS and flags, and refuse what C refuses (incr, append). The tunables command, the stats
# and `stats extstore`, the metadump's flash location, and a flash miss when the file lost
# its data.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(slurp mem_metadump);
use File::Temp qw(tempdir);

plan skip_all => 'extstore not built' unless supports_extstore();

my $dir = tempdir(CLEANUP => 1);
my $file = "$dir/ext";
my $server = new_memcached("-m 64 -U 0 -o ext_page_size=8,ext_wbuf_size=2,ext_threads=1,"
    . "ext_item_size=512,ext_item_age=1,ext_recache_rate=0,ext_path=$file:64m,"
    . "slab_automove=0,ext_max_sleep=100000");
my $sock = $server->sock;

sub value_of {
    my ($key, $len) = @_;
    my $v = '';
    my $i = 0;
    $v .= "$key:" . $i++ . ';' while length($v) < $len;
    return substr($v, 0, $len);
}

sub get_reply {
    my ($cmd) = @_;
    print $sock $cmd;
    my $out = '';
    while (my $line = <$sock>) {
        $out .= $line;
        if ($line =~ /^VALUE \S+ \d+ (\d+)/) {
            my $data;
            read($sock, $data, $1 + 2);
            $out .= $data;
            next;
        }
        last if $line =~ /^(END|ERROR|CLIENT_ERROR|SERVER_ERROR)/;
    }
    return $out;
}

my %stats_settings = %{ mem_stats($sock, 'settings') };
is($stats_settings{ext_compact_under}, 1, 'ext_compact_under: 1% of 8 pages, at least 1');
is($stats_settings{ext_drop_under}, 1, 'ext_drop_under too');
is($stats_settings{ext_item_age}, 1, 'ext_item_age as given');
is($stats_settings{ext_wbuf_size}, 2097152, 'ext_wbuf_size in bytes');

# Small values stay in memory; large ones go to flash once idle.
print $sock "set small1 3 0 5\r\nsmal1\r\nset small2 4 0 5\r\nsmal2\r\n";
is(scalar <$sock>, "STORED\r\n", 'small1');
is(scalar <$sock>, "STORED\r\n", 'small2');
my @keys = map { "big$_" } 1 .. 300;
for my $k (@keys) {
    my $v = value_of($k, 20000);
    print $sock "set $k 7 0 20000 noreply\r\n$v\r\n";
}
my ($cas_before) = mem_gets($sock, 'big7');
wait_ext_flush($sock);
my $st = mem_stats($sock);
cmp_ok($st->{extstore_objects_written}, '>=', 300, 'every large value was written');
is($st->{extstore_objects_used}, 300, 'and is in use');
is($st->{curr_items}, 302, 'every key is still there');
cmp_ok($st->{bytes}, '>', 300 * 20000, 'bytes counts the values on flash');

# A multiget mixing memory and flash hits and a miss answers in order.
my $want = "VALUE small1 3 5\r\nsmal1\r\n"
    . "VALUE big1 7 20000\r\n" . value_of('big1', 20000) . "\r\n"
    . "VALUE small2 4 5\r\nsmal2\r\n"
    . "VALUE big2 7 20000\r\n" . value_of('big2', 20000) . "\r\n"
    . "VALUE big3 7 20000\r\n" . value_of('big3', 20000) . "\r\n"
    . "END\r\n";
is(get_reply("get small1 big1 nothere small2 big2 big3\r\n"), $want,
    'multiget: memory and flash hits in request order');
is(mem_stats($sock)->{get_extstore}, 3, 'three values came from flash');

# Pipelined gets after a flash get wait for it too.
is(get_reply("get big4\r\nget small1\r\n") . get_reply(''),
    "VALUE big4 7 20000\r\n" . value_of('big4', 20000) . "\r\nEND\r\n"
    . "VALUE small1 3 5\r\nsmal1\r\nEND\r\n", 'pipelined gets answer in order');

my ($cas_now, $v7) = mem_gets($sock, 'big7');
is($cas_now, $cas_before, 'CAS kept on flash');
is($v7, value_of('big7', 20000), 'gets: the value');

# Meta: value, size, flags, CAS from the header.
print $sock "mg big8 s f v c\r\n";
my $hdr = <$sock>;
like($hdr, qr/^VA 20000 s20000 f7 c\d+\r\n\z/, 'mg v: VA line from the header');
my $data;
read($sock, $data, 20002);
is($data, value_of('big8', 20000) . "\r\n", 'mg v: the value from flash');
print $sock "mg big9 s t\r\n";
is(scalar <$sock>, "HD s20000 t-1\r\n", 'mg without v answers from the header alone');
print $sock "mg big10 v q k\r\nmn\r\n";
like(scalar <$sock>, qr/^VA 20000 kbig10\r\n/, 'mg v q k on flash');
read($sock, $data, 20002);
is(scalar <$sock>, "MN\r\n", 'mn after it');

# What C refuses on a header item.
print $sock "incr big11 1\r\n";
is(scalar <$sock>, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    'incr on a value on flash');
print $sock "append big11 0 0 1\r\nx\r\n";
is(scalar <$sock>, "NOT_STORED\r\n", 'append on a value on flash');
print $sock "prepend big11 0 0 1\r\nx\r\n";
is(scalar <$sock>, "NOT_STORED\r\n", 'prepend on a value on flash');
print $sock "set big12 1 0 3\r\nnew\r\n";
is(scalar <$sock>, "STORED\r\n", 'set over a value on flash');
is(get_reply("get big12\r\n"), "VALUE big12 1 3\r\nnew\r\nEND\r\n", 'the new value wins');

# Deletes let go of the objects on flash.
my $used = mem_stats($sock)->{extstore_bytes_used};
print $sock "delete big13\r\n";
is(scalar <$sock>, "DELETED\r\n", 'delete a value on flash');
cmp_ok(mem_stats($sock)->{extstore_bytes_used}, '<', $used, 'its bytes are no longer used');

# Binary gets of flash values (GETK, and GETQ hits before a NOOP).
{
    my $req = '';
    $req .= pack('CCnCCnNNNN', 0x80, 0x0c, 5, 0, 0, 0, 5, 1, 0, 0) . 'big20';
    $req .= pack('CCnCCnNNNN', 0x80, 0x09, 5, 0, 0, 0, 5, 2, 0, 0) . 'big21';
    $req .= pack('CCnCCnNNNN', 0x80, 0x09, 6, 0, 0, 0, 6, 9, 0, 0) . 'nokey1';
    $req .= pack('CCnCCnNNNN', 0x80, 0x0a, 0, 0, 0, 0, 0, 10, 0, 0);
    my $bs = $server->new_sock;
    print $bs $req;
    my @got;
    while (1) {
        my $h;
        read($bs, $h, 24) == 24 or last;
        my ($magic, $opc, $klen, $elen, undef, $status, $blen, $opaque) = unpack('CCnCCnNN', $h);
        my $body = '';
        read($bs, $body, $blen) if $blen;
        push @got, [$opc, $status, $opaque, $body, $klen, $elen];
        last if $opc == 0x0a;
    }
    is(scalar @got, 3, 'binary: GETK, GETQ hit, NOOP (the GETQ miss says nothing)');
    is($got[0][3], pack('N', 7) . 'big20' . value_of('big20', 20000), 'binary GETK body');
    is($got[1][3], pack('N', 7) . value_of('big21', 20000), 'binary GETQ body');
    is($got[2][2], 10, 'NOOP last');
}

# The run-time tunables.
for my $cmd ('extstore item_age 5', 'extstore recache_rate 0', 'extstore max_frag 0.5',
        'extstore drop_unread 0', 'extstore compact_under 2', 'extstore drop_u 2',
        'extstore free_memchunks 1 2') {
    print $sock "$cmd\r\n";
    is(scalar <$sock>, "OK\r\n", $cmd);
}
for my $cmd ('extstore item_age', 'extstore bogus 1', 'extstore item_age x',
        'extstore free_memchunks 64 1', 'extstore') {
    print $sock "$cmd\r\n";
    is(scalar <$sock>, "ERROR\r\n", $cmd);
}
print $sock "slabs automove freeratio 0.02\r\n";
is(scalar <$sock>, "OK\r\n", 'slabs automove freeratio');
%stats_settings = %{ mem_stats($sock, 'settings') };
is($stats_settings{slab_automove_freeratio}, '0.020', 'freeratio changed');
is($stats_settings{ext_item_age}, 5, 'item_age changed');
is($stats_settings{ext_max_frag}, '0.50', 'max_frag changed');
is($stats_settings{ext_drop_under}, 2, 'drop_under changed (prefix)');

# stats extstore: four lines per page.
my $pages = mem_stats($sock, ' extstore');
is(scalar(keys %$pages), 8 * 4, 'stats extstore: 8 pages');
ok(exists $pages->{'0:version'} && exists $pages->{'7:free_bucket'}, 'page fields');
my @used_pages = grep { /:version$/ && $pages->{$_} != 0 } keys %$pages;
ok(@used_pages >= 1, 'some pages hold values');

# The general stats: the extstore lines in C's places.
print $sock "stats\r\n";
my @names;
while (my $l = <$sock>) {
    last if $l =~ /^END/;
    push @names, $1 if $l =~ /^STAT (\S+) /;
}
my $names = join(' ', @names);
like($names, qr/get_flushed get_extstore get_aborted_extstore get_oom_extstore recache_from_extstore miss_from_extstore badcrc_from_extstore delete_misses/,
    'per-thread extstore counters after get_flushed');
like($names, qr/log_watchers extstore_memory_pressure extstore_compact_lost extstore_compact_rescues extstore_compact_resc_cold extstore_compact_resc_old extstore_compact_skipped extstore_page_allocs extstore_page_evictions extstore_page_reclaims extstore_pages_free extstore_pages_used extstore_objects_evicted extstore_objects_read extstore_objects_written extstore_objects_used extstore_bytes_evicted extstore_bytes_written extstore_bytes_read extstore_bytes_used extstore_bytes_fragmented extstore_limit_maxbytes extstore_io_queue /,
    'engine and compaction stats after log_watchers');
is(mem_stats($sock)->{extstore_limit_maxbytes}, 64 * 1024 * 1024, 'limit_maxbytes');
like(mem_stats($sock)->{extstore_memory_pressure}, qr/^\d+\.\d\d\z/, 'memory pressure: two decimals');

# The metadump names where a value is on flash.
my $dump = mem_metadump($sock);
like($dump->{big30}, qr/^exp=-1 la=\d+ cas=\d+ fetch=no cls=\d+ size=\d+ flags=7 ext_page=\d+ ext_offset=\d+ \z/,
    'metadump: ext_page and ext_offset');
like($dump->{small2}, qr/^exp=-1 la=\d+ cas=\d+ fetch=(yes|no) cls=1 size=\d+ flags=4 \z/,
    'metadump: a value in memory has none');

# The file loses its data: a read that finds nothing is a miss, never another value.
truncate($file, 0) or die "truncate: $!";
my $miss_before = mem_stats($sock)->{miss_from_extstore};
is(get_reply("get big40 small1\r\n"), "VALUE small1 3 5\r\nsmal1\r\nEND\r\n",
    'a value the file lost is a miss; the rest of the multiget answers');
is(mem_stats($sock)->{miss_from_extstore}, $miss_before + 1, 'counted as miss_from_extstore');
is(get_reply("get big40\r\n"), "END\r\n", 'and the key is gone');
print $sock "mg big41 v\r\n";
is(scalar <$sock>, "EN\r\n", 'mg v on a lost value: EN');

done_testing();
