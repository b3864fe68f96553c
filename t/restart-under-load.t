#!/usr/bin/env perl
# The restartable cache under churn: writers keep storing values of many sizes
# (some chunked) into a cache small enough to evict, while the slab automover
# and the LRU crawler run, and the server is stopped gracefully in the middle of
# it. After the restart every item still in the cache must read back whole:
# each value is derived from its key, so a value that is torn, shifted or
# another item's shows up.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(mem_metadump);

use File::Temp qw(tempdir);
use POSIX qw(_exit);

my $tmp = tempdir(CLEANUP => 1);
my $mem = "$tmp/memory";
my $args = "-m 64 -e $mem -o slab_reassign,slab_automove=2,lru_crawler -t 2";

# The value of a key: its name repeated, cut to a length the key names.
sub value_for {
    my ($key) = @_;
    my ($len) = $key =~ /-(\d+)$/;
    my $unit = "<$key>";
    my $v = $unit x (int($len / length($unit)) + 1);
    return substr($v, 0, $len);
}

my @sizes = (10, 100, 300, 1000, 5000, 20_000, 100_000, 600_000);

sub writer {
    my ($server, $id) = @_;
    my $sock = $server->new_sock;
    my $n = 0;
    while (1) {
        my $len = $sizes[$n % @sizes] + ($n % 7);
        my $key = "w$id-$n-$len";
        my $v = value_for($key);
        print $sock "set $key 0 0 " . length($v) . "\r\n$v\r\n";
        my $reply = <$sock>;
        last unless defined $reply;
        $n++;
    }
    _exit(0);
}

my $server = new_memcached($args);
my @kids;
for my $id (1 .. 2) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    writer($server, $id) if $pid == 0;
    push @kids, $pid;
}
# Let the cache fill and evict, and the mover move pages.
sleep(4);
my $stats = mem_stats($server->sock);
cmp_ok($stats->{evictions}, '>', 0, "the cache evicts under the writers ($stats->{evictions})");

$server->graceful_stop;
is($server->wait_exit(30), 0, 'graceful stop under load: exit status 0');
kill 'TERM', @kids;
waitpid($_, 0) for @kids;
ok(-e "$mem.meta", 'metadata written');
sleep(1.2);

$server = new_memcached($args);
my $sock = $server->sock;
$stats = mem_stats($sock);
cmp_ok($stats->{curr_items}, '>', 100, "items came back ($stats->{curr_items})");

# Every key the crawler can list must read back whole.
my @keys = sort keys %{ mem_metadump($sock) };
is(scalar(@keys), $stats->{curr_items}, 'metadump lists every restored item');
my ($good, $bad) = (0, 0);
for my $key (@keys) {
    my $want = value_for($key);
    print $sock "get $key\r\n";
    my $head = <$sock>;
    if (defined $head && $head =~ /^VALUE \S+ 0 (\d+)\r\n$/) {
        my $got = '';
        read($sock, $got, $1 + 2);
        my $end = <$sock>;
        if ($got eq "$want\r\n" && $end eq "END\r\n") {
            $good++;
            next;
        }
    }
    $bad++;
    diag("bad value for $key") if $bad <= 5;
}
is($bad, 0, "no torn or foreign value among $good restored items");

# The restored cache goes on working under the same churn.
my $pid = fork();
die "fork: $!" unless defined $pid;
writer($server, 3) if $pid == 0;
sleep(2);
kill 'TERM', $pid;
waitpid($pid, 0);
$stats = mem_stats($sock);
cmp_ok($stats->{total_items}, '>', 0, 'new writes after the restart');
print $sock "set after-restart-5 0 0 5\r\n" . value_for('after-restart-5') . "\r\n";
is(scalar <$sock>, "STORED\r\n", 'a set after the churn');
mem_get_is($sock, 'after-restart-5', value_for('after-restart-5'));

done_testing();
