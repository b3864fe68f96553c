#!/usr/bin/env perl
# -L: the memory limit is taken as one region of transparent huge pages and every slab class
# gets its first page up front; the limit cannot change at run time; too small a limit for
# one page per class stops the server with C's message.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $thp = '';
if (open(my $fh, '<', '/sys/kernel/mm/transparent_hugepage/enabled')) {
    $thp = <$fh> // '';
}
plan skip_all => 'transparent huge pages are off or missing here'
    if $thp eq '' || $thp =~ /\[never\]/;

my $server = new_memcached("-L");
my $sock = $server->sock;
my $slabs = mem_stats($sock, "slabs");
is($slabs->{active_slabs}, 39, "every class has a page");
is($slabs->{total_malloced}, 39 * 1024 * 1024, "one page per class taken up front");
is($slabs->{"1:total_pages"}, 1, "class 1 has its page");
is($slabs->{"39:total_pages"}, 1, "the largest class has its page");
is(mem_request($sock, "cache_memlimit 100\r\n", 1),
   "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n",
   "a preallocated limit cannot change");
print $sock "set a 0 0 5\r\nhello\r\n";
is(scalar <$sock>, "STORED\r\n", "stores work");
mem_get_is($sock, "a", "hello");
is(mem_stats($sock, "slabs")->{total_malloced}, 39 * 1024 * 1024,
   "no new page for the first item of a class");

# With -m 10 there is no room for 39 pages.
my $exe = MemcachedTest::get_memcached_exe();
my @root = $< == 0 ? ('-u', 'root') : ();
my $out = `$exe @root -L -m 10 -p 0 -U 0 2>&1`;
is($? >> 8, 1, "-L -m 10 exits with status 1");
is($out, "Error while preallocating slab memory!\n"
    . "If using -L or other prealloc options, max memory must be at least 39 megabytes.\n",
   "and says why");

done_testing();
