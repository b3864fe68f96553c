#!/usr/bin/env perl
# Soak (bounded in time): several clients write and read back values while the hash table
# grows, the LRU maintainer juggles, the crawler keeps crawling, the slab mover keeps moving
# pages between classes (by hand and by the automover) and items expire. No value may come
# back corrupted or belong to another key, and the server must stay up.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use POSIX qw(_exit);

my $server = new_memcached("-m 32 -t 2 -l 127.0.0.1 "
    . "-o hashpower=12,slab_chunk_max=16,slab_automove=2,slab_automove_window=3");
my $seconds = 6;
my $clients = 3;

my @pids;
for my $n (1 .. $clients) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $sock = $server->new_sock;
        my $bad = 0;
        my $end = time() + $seconds;
        my $i = 0;
        while (time() < $end) {
            $i++;
            my $key = "c$n:" . ($i % 5000);
            # Mostly small values over a few classes; every 40th one chunked.
            my $pad = $i % 40 == 0 ? 20000 + $i % 5000 : ($i * 13) % 1500;
            my $val = "$key:" . ('v' x $pad) . ":$i";
            my $ttl = $i % 7 == 0 ? 1 : 0;
            print $sock "set $key 0 $ttl " . length($val) . "\r\n$val\r\n";
            my $r = <$sock>;
            $bad++ unless defined $r && ($r eq "STORED\r\n" || $r =~ /^SERVER_ERROR out of memory/);
            if ($i % 3 == 0) {
                my $k2 = "c$n:" . (($i * 7) % 5000);
                print $sock "get $k2\r\n";
                my $line = <$sock>;
                last unless defined $line;
                if ($line =~ /^VALUE (\S+) 0 (\d+)\r\n$/) {
                    my ($k, $len) = ($1, $2);
                    my $data = '';
                    read($sock, $data, $len + 2);
                    my $end_line = <$sock>;
                    # A value always starts with its own key: nothing torn or misfiled.
                    $bad++ unless $k eq $k2 && $data =~ /^\Q$k2\E:v*:\d+\r\n$/
                        && defined $end_line && $end_line eq "END\r\n";
                } elsif ($line ne "END\r\n") {
                    $bad++;
                }
            }
        }
        _exit($bad > 255 ? 255 : $bad);
    }
    push @pids, $pid;
}

# Meanwhile keep the crawler busy, and ask the mover for pages for one class after another.
my $admin = $server->new_sock;
my $end = time() + $seconds;
my $crawls = 0;
my $moves = 0;
my $dst = 1;
while (time() < $end) {
    print $admin "lru_crawler crawl all\r\n";
    my $r = <$admin>;
    $crawls++ if defined $r && $r eq "OK\r\n";
    $dst = $dst % 40 + 1;
    print $admin "slabs reassign -1 $dst\r\n";
    $r = <$admin>;
    $moves++ if defined $r && $r eq "OK\r\n";
    MemcachedTest::sleep(0.1);
}

for my $pid (@pids) {
    waitpid($pid, 0);
    is($? >> 8, 0, "client $pid saw only intact values");
}
cmp_ok($crawls, '>', 0, "crawls ran during the load");
cmp_ok($moves, '>', 0, "page moves were asked for during the load");
my $s = mem_stats($admin);
cmp_ok($s->{slabs_moved}, ">", 0, "pages moved during the load");
diag("moves asked: $moves, pages moved: $s->{slabs_moved}, rescues: $s->{slab_reassign_rescues}, chunk rescues: $s->{slab_reassign_chunk_rescues}, evictions: $s->{evictions}");
# Thousands of keys over 2^12 buckets: the table had to grow while the clients ran.
cmp_ok($s->{hash_power_level}, ">", 12, "the hash table grew under load");
cmp_ok($s->{curr_items}, '>', 0, "items stored");
like(mem_request($admin, "version\r\n", 1), qr/^VERSION /, "server still answers");

done_testing();
