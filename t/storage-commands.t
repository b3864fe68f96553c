#!/usr/bin/env perl
# Text storage commands: set/add/replace/append/prepend/cas, get/gets (multi-key), delete,
# noreply, CAS numbering and the error replies, byte for byte as C 1.6.45.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached();
my $sock = $server->sock;

sub req { return mem_request($sock, @_) }

is(req("set foo 0 0 3\r\nbar\r\n", 1), "STORED\r\n", "set");
is(req("get foo\r\n", 3), "VALUE foo 0 3\r\nbar\r\nEND\r\n", "get");
is(req("gets foo\r\n", 3), "VALUE foo 0 3 2\r\nbar\r\nEND\r\n", "gets: the first CAS is 2");
is(req("get nope\r\n", 1), "END\r\n", "miss");
is(req("add foo 0 0 1\r\nx\r\n", 1), "NOT_STORED\r\n", "add over an existing key");
is(req("add new 5 0 2\r\nhi\r\n", 1), "STORED\r\n", "add a new key");
is(req("get new nope foo\r\n", 5), "VALUE new 5 2\r\nhi\r\nVALUE foo 0 3\r\nbar\r\nEND\r\n",
    "multi-get skips misses");
is(req("replace nope 0 0 1\r\nx\r\n", 1), "NOT_STORED\r\n", "replace a missing key");
is(req("replace foo 7 0 3\r\nbaz\r\n", 1), "STORED\r\n", "replace");
is(req("append foo 0 0 2\r\n!!\r\n", 1), "STORED\r\n", "append");
is(req("prepend foo 0 0 2\r\n<<\r\n", 1), "STORED\r\n", "prepend");
is(req("gets foo\r\n", 3), "VALUE foo 7 7 8\r\n<<baz!!\r\nEND\r\n",
    "append/prepend keep the flags; every store took a CAS, failed ones too");
is(req("append nope 0 0 1\r\nx\r\n", 1), "NOT_STORED\r\n", "append to a missing key");
is(req("cas foo 0 0 1 2\r\nx\r\n", 1), "EXISTS\r\n", "cas with a stale value");
is(req("cas foo 0 0 1 8\r\ny\r\n", 1), "STORED\r\n", "cas with the current value");
is(req("cas nope 0 0 1 7\r\ny\r\n", 1), "NOT_FOUND\r\n", "cas on a missing key");
is(req("get foo\r\n", 3), "VALUE foo 0 1\r\ny\r\nEND\r\n", "cas stored");
is(req("set foo 0 0 1 noreply\r\nz\r\nget foo\r\n", 3), "VALUE foo 0 1\r\nz\r\nEND\r\n", "noreply");
is(req("set big 0 0 2\r\nabc\r\n", 2),
    "CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\n",
    "a value without its \\r\\n is refused; the leftover newline is read as a command");
is(req("set x 0 0 -1\r\n", 1), "CLIENT_ERROR bad command line format\r\n", "negative length");
is(req("set x abc 0 1\r\nq\r\n", 1), "CLIENT_ERROR bad command line format\r\n",
    "bad flags: the value is swallowed");
is(req("set k2 4294967295 0 1\r\nq\r\nget k2\r\n", 4), "STORED\r\nVALUE k2 4294967295 1\r\nq\r\nEND\r\n",
    "32-bit flags");
my $long = 'a' x 251;
is(req("set $long 0 0 1\r\nq\r\n", 1), "CLIENT_ERROR bad command line format\r\n", "key too long for set");
is(req("get a $long\r\n", 2), "CLIENT_ERROR bad command line format\r\n\r\n",
    "key too long for get (C repeats the line ending)");
is(req("delete foo\r\n", 1), "DELETED\r\n", "delete");
is(req("delete foo\r\n", 1), "NOT_FOUND\r\n", "delete a missing key");
is(req("delete new 0\r\n", 1), "DELETED\r\n", "extra delete arguments are ignored");
is(req("delete k2 noreply\r\nget k2\r\n", 1), "END\r\n", "delete noreply");
my $huge = 'x' x (1024 * 1024);
is(req("set huge 0 0 " . length($huge) . "\r\n$huge\r\n", 1),
    "SERVER_ERROR object too large for cache\r\n", "a value over -I is refused and swallowed");
is(req("version\r\n", 1), "VERSION " . ($ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45') . "\r\n",
    "still in sync after the swallow");

my $stats = mem_stats($sock);
is($stats->{curr_items}, 0, "curr_items: everything was deleted");
is($stats->{cas_hits}, 1, "cas_hits");
is($stats->{cas_badval}, 1, "cas_badval");
is($stats->{cas_misses}, 1, "cas_misses");
is($stats->{delete_hits}, 3, "delete_hits");
is($stats->{delete_misses}, 1, "delete_misses");
is($stats->{store_too_large}, 1, "store_too_large");

done_testing();
