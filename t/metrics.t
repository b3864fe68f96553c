#!/usr/bin/env perl
# The opt-in Prometheus endpoint (-o metrics_listen): off means no listener; GET /metrics
# answers the text format with memcached_exporter's names, types, labels and formulas, and
# values that agree with `stats`, also while clients run; other requests get 404 (or 400 when
# malformed); a scraper that stops reading stalls neither clients nor other scrapers.
# This build's own feature (C has none), so it runs only against this build.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(_exit);
use Time::HiRes qw(time);
use File::Temp ();

plan skip_all => 'no metrics endpoint in this build'
    unless MemcachedTest::print_help() =~ /metrics_listen/;

sub http {
    my ($port, $request) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10) or return undef;
    print $s $request;
    my $resp = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(10)) {
        my $n = sysread($s, $resp, 65536, length $resp);
        last unless $n;
    }
    my ($head, $body) = split(/\r\n\r\n/, $resp, 2);
    my ($status) = ($head // '') =~ m{^HTTP/1\.[01] (\d+)};
    return { status => $status // 0, head => $head // '', body => $body // '' };
}

sub scrape {
    my ($port) = @_;
    return http($port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

# name{labels} => value, with HELP and TYPE per family.
sub parse_metrics {
    my ($text) = @_;
    my (%v, %help, %type, @order);
    for my $line (split /\n/, $text) {
        if ($line =~ /^# HELP (\S+) (.*)$/) {
            $help{$1} = $2;
            push @order, $1;
        } elsif ($line =~ /^# TYPE (\S+) (\S+)$/) {
            $type{$1} = $2;
        } elsif ($line =~ /^(\S+?)(\{[^}]*\})? (\S+)$/) {
            $v{$1 . ($2 // '')} = $3;
        } else {
            fail("unparsable line: $line");
        }
    }
    return (\%v, \%help, \%type, \@order);
}

# Off by default: no listener.
{
    my $port = free_port();
    my $server = new_memcached();
    my $r = http($port, "GET /metrics HTTP/1.1\r\n\r\n");
    ok(!defined $r, 'no metrics listener without metrics_listen');
    my $settings = mem_stats($server->sock, 'settings');
    ok(!grep(/metrics/, keys %$settings), 'and stats settings is unchanged');
}

my $mport = free_port();
my $server = new_memcached("-o metrics_listen=127.0.0.1:$mport");
my $sock = $server->sock;

# memcached_exporter's own acceptance check.
print $sock "stats reset\r\n";
is(scalar <$sock>, "RESET\r\n", 'stats reset');
print $sock "set foo 0 0 3\r\nbar\r\nset foo 0 0 3\r\nbar\r\n";
is(scalar <$sock>, "STORED\r\n", 'set foo') for 1 .. 2;
mem_get_is($sock, 'foo', 'bar');
mem_get_is($sock, 'qux', undef);
my ($cas) = mem_gets($sock, 'foo');
print $sock "cas foo 0 0 6 $cas\r\nbanana\r\n";
is(scalar <$sock>, "STORED\r\n", 'cas foo');
my $large = '.' x 130;
print $sock "set large 0 0 130\r\n$large\r\n";
is(scalar <$sock>, "STORED\r\n", 'set large');

my $r = scrape($mport);
is($r->{status}, 200, 'GET /metrics: 200');
like($r->{head}, qr{^Content-Type: text/plain; version=0\.0\.4; charset=utf-8; escaping=underscores\r?$}mi,
    'text exposition format 0.0.4');
my ($m, $help, $type, $order) = parse_metrics($r->{body});
for my $want (
    'memcached_up 1', 'memcached_current_bytes 262', 'memcached_max_connections 1024',
    'memcached_current_items 2', 'memcached_items_total 4',
    'memcached_commands_total{command="get",status="hit"} 2',
    'memcached_commands_total{command="get",status="miss"} 1',
    'memcached_commands_total{command="set",status="hit"} 3',
    'memcached_commands_total{command="cas",status="hit"} 1',
    'memcached_slab_current_items{slab="1"} 1', 'memcached_slab_current_items{slab="5"} 1',
    'memcached_slab_commands_total{command="set",slab="1",status="hit"} 2',
    'memcached_slab_commands_total{command="cas",slab="1",status="hit"} 1',
    'memcached_slab_commands_total{command="set",slab="5",status="hit"} 1',
    'memcached_slab_commands_total{command="cas",slab="5",status="hit"} 0',
    'memcached_slab_current_chunks{slab="1"} 10922', 'memcached_slab_current_chunks{slab="5"} 4369',
    'memcached_slab_mem_requested_bytes{slab="1"} 68',
    'memcached_slab_mem_requested_bytes{slab="5"} 194',
    'memcached_version{version="1.6.45"} 1',
) {
    like($r->{body}, qr/^\Q$want\E$/m, $want);
}
for my $lru (qw(hot warm cold temporary)) {
    ok(exists $m->{qq{memcached_slab_lru_hits_total{lru="$lru",slab="1"}}}, "lru hits: $lru");
}
# Which LRU the hits landed in depends on the maintainer's timing; together they are the two.
my $hits = 0;
$hits += $m->{qq{memcached_slab_lru_hits_total{lru="$_",slab="1"}}} for qw(hot warm cold temporary);
is($hits, 2, 'the two hits of slab 1, over its LRUs');

# Every family has HELP and TYPE; families come sorted by name, samples by label values.
is_deeply([sort @$order], $order, 'families in name order');
ok(!grep({ !defined $type->{$_} } @$order), 'every family has a TYPE');
is($type->{memcached_commands_total}, 'counter', 'commands_total is a counter');
is($type->{memcached_current_items}, 'gauge', 'current_items is a gauge');
is($type->{memcached_slab_mem_requested_bytes}, 'counter', 'mem_requested from stats items');
is($help->{memcached_slab_items_evicted_unfetched_total}, 'Total nmber of items evicted and never fetched.',
    "the exporter's HELP texts, typos included");
is($help->{memcached_extstore_compact_rescued_total}, undef, 'no extstore family without extstore');
my @lines = grep { /^memcached_commands_total/ } split /\n/, $r->{body};
is($lines[0], 'memcached_commands_total{command="cas",status="badval"} 0', 'samples in label order');
like($r->{body}, qr/^memcached_limit_bytes 6\.7108864e\+07$/m, "values formatted as Go's %g");
ok($m->{memcached_lru_crawler_enabled} == 1 && $m->{memcached_lru_crawler_hot_percent} == 20,
    'settings families while the crawler runs');

# The process metrics the exporter reads through a pid file.
my $st = mem_stats($sock);
cmp_ok($m->{memcached_process_open_fds}, '>', 5, 'open fds');
cmp_ok($m->{memcached_process_resident_memory_bytes}, '>', 1e6, 'resident memory');
cmp_ok(abs($m->{memcached_process_start_time_seconds} - (time() - $st->{uptime})), '<', 5,
    'start time');
ok(exists $m->{memcached_process_max_fds} && exists $m->{memcached_process_cpu_seconds_total},
    'max fds and cpu seconds');

# Values agree with `stats` while clients run: every counter between the stats taken just
# before and just after the scrape.
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    my $c = $server->new_sock;
    my $end = time() + 4;
    my $i = 0;
    while (time() < $end) {
        $i++;
        print $c "set k$i 0 0 5\r\nhello\r\nget k$i\r\nget nope$i\r\n";
        <$c> for 1 .. 5;
    }
    _exit(0);
}
my $agree = 1;
for my $round (1 .. 5) {
    my $before = mem_stats($sock);
    my ($mm) = parse_metrics(scrape($mport)->{body});
    my $after = mem_stats($sock);
    for my $pair (['get_hits', 'memcached_commands_total{command="get",status="hit"}'],
            ['get_misses', 'memcached_commands_total{command="get",status="miss"}'],
            ['total_items', 'memcached_items_total'], ['bytes_read', 'memcached_read_bytes_total'],
            ['total_connections', 'memcached_connections_total']) {
        my ($k, $name) = @$pair;
        my $v = $mm->{$name};
        unless (defined $v && $v >= $before->{$k} && $v <= $after->{$k}) {
            $agree = 0;
            diag("$name = " . ($v // 'undef') . " not within $before->{$k}..$after->{$k}");
        }
    }
    my $set = $mm->{'memcached_commands_total{command="set",status="hit"}'};
    my $cmd_set = $after->{cmd_set} - $after->{cas_hits} - $after->{cas_misses} - $after->{cas_badval};
    $agree = 0 unless defined $set && $set <= $cmd_set;
}
ok($agree, 'scraped counters agree with stats taken around each scrape, under traffic');
waitpid($pid, 0);

# Anything else: 404; a malformed request: 400.
is(http($mport, "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")->{status}, 404,
    'another path: 404');
is(http($mport, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")->{status},
    404, 'another method: 404');
is(http($mport, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")->{status}, 200,
    'a query string is ignored');
is(http($mport, "BLAH\r\n\r\n")->{status}, 400, 'a malformed request: 400');
my $head = http($mport, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
is($head->{status}, 200, 'HEAD /metrics');

# A scraper that asks and never reads: clients and other scrapers go on.
my @stuck;
for (1 .. 4) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$mport") or die;
    print $s "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" x 200;
    push @stuck, $s;
}
print $sock "set after 0 0 2\r\nok\r\n";
is(scalar <$sock>, "STORED\r\n", 'a client is served while scrapers stall');
mem_get_is($sock, 'after', 'ok');
is(scrape($mport)->{status}, 200, 'another scraper is served too');

# With extstore, its family.
if (supports_extstore()) {
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $eport = free_port();
    my $ext = new_memcached("-U 0 -o metrics_listen=127.0.0.1:$eport,ext_path=$dir/ext:64m");
    my ($em, $ehelp) = parse_metrics(scrape($eport)->{body});
    is($em->{memcached_extstore_bytes_limit}, '6.7108864e+07', 'extstore: bytes limit');
    ok(exists $em->{memcached_extstore_pages_free} && exists $em->{memcached_extstore_objects_written_total},
        'extstore: the engine family');
    is($ehelp->{memcached_extstore_compact_rescued_total},
        'Total number of items moved to a new page during extstore compaction,', 'its HELP as the exporter has it');
}

done_testing();
