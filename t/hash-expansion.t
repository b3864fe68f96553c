#!/usr/bin/env perl
# The hash table grows in the background once it holds more than 1.5 items per bucket
# (hash_power_level, hash_bytes, hash_is_expanding), every item staying reachable;
# -o no_hashexpand keeps it at its initial size.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $items = 20000;

sub fill {
    my ($sock) = @_;
    my $batch = '';
    for my $i (1 .. $items) {
        $batch .= "set key$i $i 0 " . length("v$i") . " noreply\r\nv$i\r\n";
        if (length($batch) > 60000) {
            print $sock $batch;
            $batch = '';
        }
    }
    print $sock $batch;
    print $sock "version\r\n";
    like(scalar <$sock>, qr/^VERSION /, "stored $items items");
}

sub wait_power {
    my ($sock, $power) = @_;
    my $s;
    for (1 .. 300) {
        $s = mem_stats($sock);
        return $s if $s->{hash_power_level} == $power && !$s->{hash_is_expanding};
        MemcachedTest::sleep(0.05);
    }
    return $s;
}

{
    my $server = new_memcached("-t 2 -o hashpower=12");
    my $sock = $server->sock;
    my $s = mem_stats($sock);
    is($s->{hash_power_level}, 12, "starts at -o hashpower");
    is($s->{hash_bytes}, 8 * 4096, "hash_bytes of 4096 buckets");
    is($s->{hash_is_expanding}, 0, "not expanding");

    fill($sock);
    # 20000 items: more than 1.5 x 2^12 and 1.5 x 2^13, less than 1.5 x 2^14.
    $s = wait_power($sock, 14);
    is($s->{hash_power_level}, 14, "grew twice, to 2^14 buckets");
    is($s->{hash_bytes}, 8 * 16384, "hash_bytes of the new table only");
    is($s->{hash_is_expanding}, 0, "expansion finished");
    is($s->{curr_items}, $items, "every item still counted");

    my $bad = 0;
    for (my $from = 1; $from <= $items; $from += 500) {
        my @n = ($from .. $from + 499);
        print $sock join('', map { "get key$_\r\n" } @n);
        for my $i (@n) {
            my $hdr = <$sock>;
            my $val = <$sock>;
            my $end = <$sock>;
            $bad++ unless $hdr eq "VALUE key$i $i " . length("v$i") . "\r\n"
                && $val eq "v$i\r\n" && $end eq "END\r\n";
        }
    }
    is($bad, 0, "every item is found with its value after the expansion");

    print $sock "delete key1\r\n";
    is(scalar <$sock>, "DELETED\r\n", "delete works on the grown table");
    mem_get_is($sock, "key1", undef);
}

{
    my $server = new_memcached("-t 2 -o hashpower=12,no_hashexpand");
    my $sock = $server->sock;
    fill($sock);
    MemcachedTest::sleep(2.2);
    my $s = mem_stats($sock);
    is($s->{hash_power_level}, 12, "no_hashexpand: the table keeps its size");
    is($s->{hash_is_expanding}, 0, "no_hashexpand: never expanding");
    mem_get_is({ sock => $sock, flags => 20000 }, "key20000", "v20000");
}

done_testing();
