#!/usr/bin/env perl
# `stats sizes`: with -o track_sizes, linked items counted per 32-byte size bucket (the
# bucket names the upper bound), following sets, replacements, incr and deletes; without
# it, "sizes_status disabled".

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

{
    my $server = new_memcached();
    my $sock = $server->sock;
    is(mem_request($sock, "stats sizes\r\n", 2), "STAT sizes_status disabled\r\nEND\r\n",
       "disabled by default");
    is(mem_stats($sock, "settings")->{track_sizes}, "no", "settings: track_sizes no");
}

my $server = new_memcached("-o track_sizes");
my $sock = $server->sock;
is(mem_stats($sock, "settings")->{track_sizes}, "yes", "settings: track_sizes yes");
is(mem_request($sock, "stats sizes\r\n", 1), "END\r\n", "no items, no buckets");

my $v = 'y' x 100;
print $sock "set a 0 0 1\r\n1\r\nset bb 5 0 100\r\n$v\r\nset ccc 0 0 3\r\nabc\r\n";
is(scalar <$sock>, "STORED\r\n", "stored a") for 1 .. 3;
# Item sizes with CAS: a = 48+8+2+3 = 61, bb = 48+8+3+4+102 = 165, ccc = 48+8+4+5 = 65.
is(mem_request($sock, "stats sizes\r\n", 4),
   "STAT 64 1\r\nSTAT 96 1\r\nSTAT 192 1\r\nEND\r\n", "one item per bucket");

print $sock "incr a 1\r\n";
is(scalar <$sock>, "2\r\n", "incr in place keeps the size");
print $sock "set a 0 0 2\r\n10\r\ndelete bb\r\n";
is(scalar <$sock>, "STORED\r\n", "a replaced by a larger value");
is(scalar <$sock>, "DELETED\r\n", "bb deleted");
is(mem_request($sock, "stats sizes\r\n", 3), "STAT 64 1\r\nSTAT 96 1\r\nEND\r\n",
   "a moved buckets, bb left");
is(mem_request($sock, "stats sizes_enable\r\n", 1), "ERROR\r\n",
   "no run-time switch in this version");

done_testing();
