#!/usr/bin/env perl
# The automover. slab_automove=1 (short window): once one class keeps evicting while another
# holds much older items on more than two pages, pages go from the old class to the evicting
# one, one per second; `slabs automove 0` stops that and `slabs automove 1` resumes it.
# slab_automove=2: every eviction asks for a page from any class with one to spare.
# The old class is made old with debugtime rather than by waiting.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

sub cmd {
    my ($sock, $line) = @_;
    print $sock "$line\r\n";
    my $reply = <$sock>;
    return $reply;
}

sub value_for {
    my ($key, $len) = @_;
    my $unit = "{$key}";
    return substr($unit x (int($len / length($unit)) + 1), 0, $len);
}

sub store_all {
    my ($sock, $pairs) = @_;
    my $stored = 0;
    my @todo = @$pairs;
    while (my @batch = splice(@todo, 0, 40)) {
        print $sock "set $_->[0] 0 0 " . length($_->[1]) . "\r\n$_->[1]\r\n" for @batch;
        for (@batch) {
            my $r = <$sock>;
            $stored++ if defined $r && $r eq "STORED\r\n";
        }
    }
    return $stored;
}

sub classes_with_pages {
    my ($slabs) = @_;
    return sort { $a <=> $b } map { /^(\d+):total_pages$/ ? $1 : () } keys %$slabs;
}

# Keeps writing new ~3 KB items (class B) until $done->(stats) holds or $secs pass, and
# returns the last stats. Every batch is checked: all sets must be STORED.
my $next_key = 0;
my $store_failures = 0;
sub write_until {
    my ($sock, $secs, $done) = @_;
    my $deadline = time() + $secs;
    while (1) {
        my $s = mem_stats($sock);
        return $s if ($done && $done->($s)) || time() > $deadline;
        my @batch = map { my $k = "w" . ++$next_key; [$k, value_for($k, 3000)] } 1 .. 40;
        $store_failures += 40 - store_all($sock, \@batch);
        MemcachedTest::sleep(0.01);
    }
}

# Ten pages of ~15 KB items (class A), then the clock jumps an hour so they are all old.
sub old_class {
    my ($sock) = @_;
    my @pairs = map { ["a$_", value_for("a$_", 15000)] } 1 .. 600;
    is(store_all($sock, \@pairs), 600, "stored 600 items of ~15 KB");
    my $slabs = mem_stats($sock, "slabs");
    my ($A) = classes_with_pages($slabs);
    is($slabs->{"$A:total_pages"}, 10, "class A ($A) has ten pages");
    is(mem_stats($sock)->{evictions}, 0, "no evictions yet");
    like(mem_move_time($sock, 3600), qr/^OK/, "clock moved an hour on");
    return $A;
}

# -------------------------------------------------------------------------------------------
# slab_automove=1

{
    my $server = new_memcached("-m 12 -o slab_automove=1,slab_automove_window=3");
    my $sock = $server->sock;
    my $settings = mem_stats($sock, "settings");
    is($settings->{slab_automove}, 1, "automove 1");
    is($settings->{slab_automove_window}, 3, "window 3");

    my $A = old_class($sock);
    is(mem_stats($sock)->{slabs_moved}, 0, "nothing moved while nothing evicts");

    # Class B fills the two pages left, then evicts its own items; the automover answers by
    # taking pages from class A.
    my $s = write_until($sock, 25, sub { $_[0]{slabs_moved} >= 2 });
    cmp_ok($s->{slabs_moved}, '>=', 2, "automover moved pages: $s->{slabs_moved}");
    cmp_ok($s->{evictions}, '>', 0, "class B evicted");
    my $slabs = mem_stats($sock, "slabs");
    my ($B) = grep { $_ != $A } classes_with_pages($slabs);
    ok(defined $B, "class B ($B) has pages");
    cmp_ok($slabs->{"$A:total_pages"}, '<', 10, "class A gave up pages");
    cmp_ok($slabs->{"$B:total_pages"}, '>', 2, "class B got them");
    is($slabs->{"$A:total_pages"} + $slabs->{"$B:total_pages"}, 12, "no page lost or added");
    is($s->{slab_global_page_pool}, 0, "none went to the pool");
    my $items = mem_stats($sock, "items");
    cmp_ok($items->{"items:$B:evicted"}, '>', 0, "class B's evictions counted");

    # Off: the workload goes on, nothing moves.
    is(cmd($sock, "slabs automove 0"), "OK\r\n", "automover off");
    is(mem_stats($sock, "settings")->{slab_automove}, 0, "settings say 0");
    $s = write_until($sock, 10, sub { $_[0]{slab_reassign_running} == 0 });
    my $moved = $s->{slabs_moved};
    my $ev = $s->{evictions};
    $s = write_until($sock, 3, undef);
    cmp_ok($s->{evictions}, '>', $ev, "class B still evicting");
    is($s->{slabs_moved}, $moved, "but no page moved with the automover off");

    # On again: moves resume.
    is(cmd($sock, "slabs automove 1"), "OK\r\n", "automover on");
    $s = write_until($sock, 25, sub { $_[0]{slabs_moved} > $moved });
    cmp_ok($s->{slabs_moved}, '>', $moved, "moves resumed");
    is($store_failures, 0, "every set was STORED");
}

# -------------------------------------------------------------------------------------------
# slab_automove=2: a page moves as soon as a class has to evict.

{
    my $server = new_memcached("-m 12 -o slab_automove=2");
    my $sock = $server->sock;
    is(mem_stats($sock, "settings")->{slab_automove}, 2, "automove 2");
    my $A = old_class($sock);

    my $s = write_until($sock, 20, sub { $_[0]{slabs_moved} >= 3 });
    cmp_ok($s->{slabs_moved}, '>=', 3, "pages moved on evictions: $s->{slabs_moved}");
    cmp_ok($s->{evictions}, '>', 0, "there were evictions");
    my $slabs = mem_stats($sock, "slabs");
    my ($B) = grep { $_ != $A } classes_with_pages($slabs);
    cmp_ok($slabs->{"$A:total_pages"}, '<', 10, "class A gave up pages");
    cmp_ok($slabs->{"$B:total_pages"}, '>', 2, "class B got them");
    is($slabs->{"$A:total_pages"} + $slabs->{"$B:total_pages"}, 12, "no page lost or added");
    is($store_failures, 0, "every set was STORED");

    # Set back to 0 by command: evictions no longer move pages.
    is(cmd($sock, "slabs automove 0"), "OK\r\n", "automover off");
    $s = write_until($sock, 10, sub { $_[0]{slab_reassign_running} == 0 });
    my $moved = $s->{slabs_moved};
    my $ev = $s->{evictions};
    $s = write_until($sock, 2, undef);
    cmp_ok($s->{evictions}, '>', $ev, "still evicting");
    is($s->{slabs_moved}, $moved, "no page moved");
}

done_testing();
