#!/usr/bin/env perl
# "stats slabs" and "stats items": per-class lines for classes in use, per-class counters,
# as C 1.6.45 prints them (without the LRU maintainer, whose extra fields come later).

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached("-o no_lru_maintainer,no_lru_crawler");
my $sock = $server->sock;

my $empty = mem_stats($sock, "slabs");
is_deeply($empty, { active_slabs => 0, total_malloced => 0 }, "no classes in use at start");
is_deeply(mem_stats($sock, "items"), {}, "no items at start");

print $sock "set a 0 0 1\r\nx\r\n";
is(scalar <$sock>, "STORED\r\n", "stored a small item");
my $v = 'y' x 300;
print $sock "set bb 0 0 300\r\n$v\r\n";
is(scalar <$sock>, "STORED\r\n", "stored a larger item");
mem_get_is($sock, "a", "x");
print $sock "delete bb\r\nincr a 1\r\n";
is(scalar <$sock>, "DELETED\r\n", "deleted");
is(scalar <$sock>, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "incr on x");

my $s = mem_stats($sock, "slabs");
is($s->{active_slabs}, 2, "two classes in use");
is($s->{total_malloced}, 2 * 1024 * 1024, "two pages");
is($s->{"1:chunk_size"}, 96, "class 1 chunk size");
is($s->{"1:chunks_per_page"}, 10922, "class 1 chunks per page");
is($s->{"1:used_chunks"}, 1, "one chunk used in class 1");
is($s->{"1:free_chunks"}, 10921, "the rest free");
is($s->{"1:get_hits"}, 1, "class 1 get_hits");
is($s->{"1:cmd_set"}, 1, "class 1 cmd_set");
is($s->{"1:free_chunks_end"}, 0, "free_chunks_end is always 0");
my ($big) = grep { /^\d+:delete_hits$/ && $s->{$_} == 1 } keys %$s;
ok($big, "the larger class counts the delete");

my $i = mem_stats($sock, "items");
is($i->{"items:1:number"}, 1, "one item in class 1");
is($i->{"items:1:mem_requested"}, 61, "its size as C counts it");
is($i->{"items:1:evicted"}, 0, "nothing evicted");
ok(!exists $i->{"items:1:number_hot"}, "no per-LRU numbers without the maintainer");
my @classes = grep { /:number$/ } keys %$i;
is(scalar @classes, 1, "only classes with items are listed");

done_testing();
