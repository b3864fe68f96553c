#!/usr/bin/env perl
# cache_memlimit: run-time memory limit changes and their replies, as C 1.6.45.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached();
my $sock = $server->sock;

sub cmd {
    my ($line) = @_;
    print $sock "$line\r\n";
    return scalar <$sock>;
}

is(cmd("cache_memlimit"), "ERROR\r\n", "needs a value");
is(cmd("cache_memlimit x"), "ERROR\r\n", "needs a number");
is(cmd("cache_memlimit 7"), "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n", "at least 8m");
is(cmd("cache_memlimit 1000000001"), "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
    "megabytes, not bytes");
is(cmd("cache_memlimit 100"), "OK\r\n", "adjusted");
is(mem_stats($sock)->{limit_maxbytes}, 100 * 1024 * 1024, "limit_maxbytes follows");
is(mem_stats($sock, "settings")->{maxbytes}, 100 * 1024 * 1024, "settings maxbytes follows");
print $sock "cache_memlimit 9 noreply\r\nversion\r\n";
like(scalar <$sock>, qr/^VERSION /, "noreply is silent");
is(mem_stats($sock)->{limit_maxbytes}, 9 * 1024 * 1024, "and applied");

done_testing();
