#!/usr/bin/env perl
# `lru_crawler disable` followed at once by `lru_crawler enable` never leaves two crawler
# threads: until the stopped thread has left, a new start is refused as C refuses it
# ("ERROR failed to start lru crawler thread").

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

plan skip_all => 'needs /proc' unless -d '/proc/self/task';

my $server = new_memcached();
my $sock = $server->sock;
# The harness's pid is timedrun's; the server is its child.
my $pid = $server->pid;
if (open(my $fh, '<', "/proc/$pid/task/$pid/children")) {
    my ($child) = split ' ', (<$fh> // '');
    $pid = $child if $child;
}

sub crawler_threads {
    my $n = 0;
    for my $task (glob("/proc/$pid/task/*")) {
        open(my $fh, '<', "$task/comm") or next;
        my $name = <$fh> // '';
        chomp $name;
        $n++ if $name eq 'mc-itemcrawler';
    }
    return $n;
}

is(crawler_threads(), 1, 'one crawler thread at start');
for my $round (1 .. 5) {
    # Pipelined, so the enable arrives while the stopped thread may still be leaving.
    my $batch = "lru_crawler disable\r\nlru_crawler enable\r\n" x 50;
    my $got = mem_meta_batch($sock, $batch);
    my @lines = split /\r\n/, $got;
    is(scalar(@lines), 100, "round $round: every command answered");
    my $bad = grep { $_ ne 'OK' && $_ ne 'ERROR failed to start lru crawler thread' } @lines;
    is($bad, 0, "round $round: OK or C's refusal");
    # Whatever the last enable said, there is never more than one crawler thread.
    my $most = 0;
    for (1 .. 10) {
        my $n = crawler_threads();
        $most = $n if $n > $most;
        MemcachedTest::sleep(0.05);
    }
    cmp_ok($most, '<=', 1, "round $round: never two crawler threads");
}
# Once a stopped thread has gone, the crawler starts again and works.
is(mem_request($sock, "lru_crawler disable\r\n", 1), "OK\r\n", 'disable');
my $enable;
for (1 .. 150) {
    $enable = mem_request($sock, "lru_crawler enable\r\n", 1);
    last if $enable eq "OK\r\n";
    MemcachedTest::sleep(0.02);
}
is($enable, "OK\r\n", 'enable once it has gone');
my $threads = crawler_threads();
for (1 .. 50) {
    last if $threads == 1;
    MemcachedTest::sleep(0.02);
    $threads = crawler_threads();
}
is($threads, 1, 'one crawler thread');
is(mem_stats($sock, 'settings')->{lru_crawler}, 'yes', 'settings say it runs');
# It still crawls.
is(mem_request($sock, "set k 0 1 1\r\nx\r\n", 1), "STORED\r\n", 'store');
is(mem_request($sock, "lru_crawler crawl all\r\n", 1), "OK\r\n", 'a crawl runs');

done_testing();
