#!/usr/bin/env perl
# Extstore under churn: two writers overwrite and delete keys of their own with values of
# many sizes (some chunked), well past -m and past the flash file, while a reader fetches
# with text multigets and meta gets, and the slab mover, the LRU crawler, compaction and
# page eviction all run. Every value read back must be one that was written for that key,
# whole; at the end every key holds its last value or misses (evicted), never an older one,
# and no object failed its checksum.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use File::Temp qw(tempdir);
use POSIX qw(_exit);

plan skip_all => 'extstore not built' unless supports_extstore();

my $dir = tempdir(CLEANUP => 1);
my $file = "$dir/ext";
my $server = new_memcached("-m 64 -U 0 -t 4 -o ext_page_size=8,ext_wbuf_size=2,ext_item_age=1,"
    . "ext_path=$file:64m,slab_automove=1,ext_recache_rate=3,ext_max_sleep=100000,"
    . "slab_chunk_max=64");

my $KEYS = 1000;
my $OPS = 2500;

sub value_for {
    my ($key, $ver, $len) = @_;
    my $v = "$key|$ver|$len|";
    my $fill = "$key:$ver;";
    $v .= $fill x (int(($len - length($v)) / length($fill)) + 1);
    return substr($v, 0, $len);
}

# A value is good if it is exactly what value_for gives for the key and the version and
# length it names.
sub check_value {
    my ($key, $v) = @_;
    return 0 unless $v =~ /^\Q$key\E\|(\d+)\|(\d+)\|/;
    return $v eq value_for($key, $1, $2) ? $1 : 0;
}

sub writer {
    my ($id, $state_file) = @_;
    srand(1000 + $id);
    my $sock = $server->new_sock;
    my %last;
    for my $op (1 .. $OPS) {
        my $key = "w${id}k" . int(rand($KEYS));
        if (rand() < 0.1) {
            print $sock "delete $key\r\n";
            my $r = <$sock>;
            $last{$key} = 'deleted';
            next;
        }
        # Mostly flash-sized values, some over slab_chunk_max (chunked), a few small.
        my $r = rand();
        my $len = $r < 0.1 ? 100 + int(rand(300)) : $r < 0.8 ? 600 + int(rand(30000))
            : 70000 + int(rand(200000));
        my $v = value_for($key, $op, $len);
        print $sock "set $key 0 0 $len\r\n$v\r\n";
        my $reply = <$sock>;
        $last{$key} = "$op $len" if defined $reply && $reply eq "STORED\r\n";
        # Paced, so values idle long enough to go to flash while others arrive.
        select(undef, undef, undef, 0.004);
    }
    open(my $fh, '>', $state_file) or _exit(2);
    print $fh "$_ $last{$_}\n" for sort keys %last;
    close($fh);
}

sub read_value {
    my ($sock, $len) = @_;
    my $data = '';
    while (length($data) < $len + 2) {
        my $n = read($sock, $data, $len + 2 - length($data), length($data));
        last unless $n;
    }
    return substr($data, 0, $len);
}

sub reader {
    my ($result_file, $until) = @_;
    srand(7);
    my $sock = $server->new_sock;
    my ($reads, $bad, $hits) = (0, 0, 0);
    while (time() < $until && !-e "$dir/done") {
        my @keys = map { 'w' . (1 + int(rand(2))) . 'k' . int(rand($KEYS)) } 1 .. 3;
        if (rand() < 0.5) {
            print $sock "get @keys\r\n";
            while (my $line = <$sock>) {
                last if $line =~ /^END/;
                if ($line =~ /^VALUE (\S+) \d+ (\d+)/) {
                    my ($k, $len) = ($1, $2);
                    my $v = read_value($sock, $len);
                    $hits++;
                    unless (check_value($k, $v)) {
                        $bad++;
                        print STDERR "# bad get $k: ", substr($v, 0, 40), "\n";
                    }
                } else {
                    $bad++;
                    print STDERR "# bad line: $line";
                    last;
                }
            }
        } else {
            my $k = $keys[0];
            print $sock "mg $k v k\r\n";
            my $line = <$sock>;
            last unless defined $line;
            if ($line =~ /^VA (\d+) k(\S+)/) {
                my $v = read_value($sock, $1);
                $hits++;
                unless ($2 eq $k && check_value($k, $v)) {
                    $bad++;
                    print STDERR "# bad mg $k: ", substr($v, 0, 40), "\n";
                }
            } elsif ($line !~ /^EN( k\Q$k\E)?\r\n\z/) {
                $bad++;
                print STDERR "# bad mg line: $line";
            }
        }
        $reads++;
    }
    open(my $fh, '>', $result_file) or _exit(2);
    print $fh "$reads $hits $bad\n";
    close($fh);
}

my @pids;
for my $id (1, 2) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        writer($id, "$dir/state.$id");
        _exit(0);
    }
    push @pids, $pid;
}
my $rpid = fork();
die "fork: $!" unless defined $rpid;
if ($rpid == 0) {
    reader("$dir/reads", time() + 240);
    _exit(0);
}
waitpid($_, 0) for @pids;
is($?, 0, 'the writers finished');
open(my $done, '>', "$dir/done") or die;
close($done);
waitpid($rpid, 0);

open(my $rf, '<', "$dir/reads") or die "reader: $!";
my ($reads, $hits, $bad) = split(' ', scalar <$rf>);
cmp_ok($reads, '>', 50, "the reader read while the writers wrote ($reads rounds, $hits hits)");
is($bad, 0, 'every value the reader got was whole and its key\'s');

# Every key: its last value, or a miss when it was deleted or evicted.
my $sock = $server->sock;
my ($last_ok, $missed, $wrong) = (0, 0, 0);
for my $id (1, 2) {
    open(my $fh, '<', "$dir/state.$id") or die "state: $!";
    while (my $line = <$fh>) {
        my ($key, $ver, $len) = split(' ', $line);
        print $sock "mg $key v\r\n";
        my $head = <$sock>;
        if ($head =~ /^VA (\d+)/) {
            my $v = read_value($sock, $1);
            if ($ver ne 'deleted' && $v eq value_for($key, $ver, $len)) {
                $last_ok++;
            } else {
                $wrong++;
                diag("$key: expected version $ver, got " . substr($v, 0, 30));
            }
        } else {
            $missed++;
        }
    }
}
is($wrong, 0, "no key holds anything but its last value ($last_ok last values, $missed misses)");
cmp_ok($last_ok, '>', 50, 'many keys still hold their last value');

my $st = mem_stats($sock);
is($st->{badcrc_from_extstore}, 0, 'no checksum failed');
cmp_ok($st->{extstore_objects_written}, '>', 1000, 'values went to flash');
cmp_ok($st->{get_extstore}, '>', 0, 'and were read from it');
cmp_ok($st->{extstore_page_reclaims}, '>', 0, 'pages were freed and reused');
cmp_ok($st->{extstore_compact_rescues} + $st->{extstore_page_evictions}, '>', 0,
    'compaction or eviction made room on flash');
diag(join(' ', map { "$_=$st->{$_}" } qw(extstore_compact_rescues extstore_page_evictions
    extstore_page_reclaims miss_from_extstore recache_from_extstore evictions
    slab_reassign_rescues get_extstore)));

done_testing();
