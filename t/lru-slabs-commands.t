#!/usr/bin/env perl
# The `lru` admin command (tune, mode, temp_ttl) and `slabs automove` settings, with C's
# replies for good and bad input and their effect on `stats settings`.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached();
my $sock = $server->sock;

my @cases = (
    # request                              reply
    ["lru",                                "ERROR"],
    ["lru bogus",                          "ERROR"],
    ["lru tune 10 20 0.1 2",               "OK"],
    ["lru t 10 20 0.1 2",                  "OK"],
    ["lru tune 50 40 0.1 2",               "ERROR hot and warm pcts must not exceed 80"],
    # C adds the two as 32-bit unsigned numbers: this sum wraps to 80.
    ["lru tune 4294967295 81 1 1",         "OK"],
    ["lru tune 10 20 0 2",                 "ERROR hot/warm age factors must be greater than 0"],
    ["lru tune 10 20 0.1 -1",              "ERROR hot/warm age factors must be greater than 0"],
    ["lru tune 10 20 x 2",                 "ERROR"],
    ["lru tune 10 20 1e999 2",             "ERROR"],
    ["lru tune -1 20 1 1",                 "ERROR"],
    ["lru tune 10 20 0.1",                 "ERROR"],
    ["lru mode",                           "ERROR"],
    ["lru mode x",                         "ERROR"],
    ["lru mode flat",                      "OK"],
    ["lru mode s",                         "OK"],
    ["lru temp_ttl x",                     "ERROR"],
    ["lru temp_ttl 99999999999",           "ERROR"],
    ["slabs",                              "ERROR"],
    ["slabs bogus 1",                      "ERROR"],
    ["slabs automove",                     "ERROR"],
    ["slabs automove invalid",             "CLIENT_ERROR bad command line format"],
    ["slabs automove 3",                   "ERROR"],
    ["slabs automove 0",                   "OK"],
    ["slabs automove ratio",               "ERROR"],
    ["slabs automove ratio x",             "ERROR"],
    ["slabs automove freeratio 0.1",       "OK"],
    ["slabs automove window",              "CLIENT_ERROR bad command line format"],
    ["slabs automove window x",            "CLIENT_ERROR bad command line format"],
    ["slabs automove window 2",            "CLIENT_ERROR automove window too low or too high"],
    ["slabs automove window 1801",         "CLIENT_ERROR automove window too low or too high"],
    ["slabs reassign 1 2 3",               "ERROR"],
    ["slabs reassign x 2",                 "CLIENT_ERROR bad command line format"],
);
for my $c (@cases) {
    my ($req, $reply) = @$c;
    is(mem_request($sock, "$req\r\n", 1), "$reply\r\n", "'$req'");
}

my $expect = sub {
    my ($what, %want) = @_;
    my $s = mem_stats($sock, "settings");
    is($s->{$_}, $want{$_}, "$what: $_") for sort keys %want;
};

is(mem_request($sock, "lru tune 15 25 0.5 3\r\n", 1), "OK\r\n", "tune");
$expect->("after tune", hot_lru_pct => 15, warm_lru_pct => 25, hot_max_factor => "0.50",
          warm_max_factor => "3.00");
is(mem_request($sock, "lru mode flat\r\n", 1), "OK\r\n", "flat");
$expect->("flat", lru_segmented => "no");
is(mem_request($sock, "lru mode segmented\r\n", 1), "OK\r\n", "segmented");
$expect->("segmented", lru_segmented => "yes");
is(mem_request($sock, "lru temp_ttl 100\r\n", 1), "OK\r\n", "temp_ttl 100");
$expect->("temp_ttl on", temp_lru => "yes", temporary_ttl => 100);
is(mem_request($sock, "lru temp_ttl -1\r\n", 1), "OK\r\n", "temp_ttl -1");
$expect->("temp_ttl off", temp_lru => "no", temporary_ttl => 100);
is(mem_request($sock, "slabs automove 2\r\n", 1), "OK\r\n", "automove 2");
is(mem_request($sock, "slabs automove ratio 0.5\r\n", 1), "OK\r\n", "ratio");
is(mem_request($sock, "slabs automove window 30\r\n", 1), "OK\r\n", "window");
$expect->("automove", slab_automove => 2, slab_automove_ratio => "0.50",
          slab_automove_window => 30);

# noreply silences OK as elsewhere.
print $sock "lru tune 10 20 0.1 2 noreply\r\nslabs automove 1 noreply\r\n";
like(mem_request($sock, "version\r\n", 1), qr/^VERSION /, "noreply: no stray replies");
$expect->("noreply still applies", hot_lru_pct => 10, slab_automove => 1);

# TEMP_LRU in use: items with a short TTL land there.
print $sock "lru temp_ttl 100\r\n";
is(scalar <$sock>, "OK\r\n", "temp_ttl 100 again");
print $sock "set short 0 50 1\r\nx\r\n";
is(scalar <$sock>, "STORED\r\n", "stored a 50 s item");
is(mem_stats($sock, "items")->{"items:1:number_temp"}, 1, "it went to TEMP");

# Without the maintainer, mode and temp_ttl are refused.
{
    my $flat = new_memcached("-o no_lru_maintainer");
    my $fs = $flat->sock;
    is(mem_request($fs, "lru mode segmented\r\n", 1), "ERROR\r\n", "no maintainer: mode");
    is(mem_request($fs, "lru temp_ttl 10\r\n", 1), "ERROR\r\n", "no maintainer: temp_ttl");
    is(mem_request($fs, "lru tune 10 20 0.1 2\r\n", 1), "OK\r\n", "no maintainer: tune");
}

done_testing();
