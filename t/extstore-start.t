#!/usr/bin/env perl
# Starting with extstore: C's refusals of a bad ext_path and its messages, the lock that
# keeps a second server off a file in use, a file that cannot be opened, and a restartable
# cache (-e), which does not come back with extstore: the server starts empty, saying so.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(run_binary);
use File::Temp qw(tempdir);

plan skip_all => 'extstore not built' unless supports_extstore();

my $dir = tempdir(CLEANUP => 1);
my $sock = "$dir/never.sock";

# [args, exit status, stderr]
my @cases = (
    [['-U', '0', '-o', "ext_path=$dir/a:0m"], 64, "supplied ext_path has zero size, cannot use\n"],
    [['-U', '0', '-o', "ext_path=$dir/a:1GB"], 1,
        "must supply size to ext_path, ie: ext_path=/f/e:64m (m|g|t|p supported)\n"
        . "failed to parse ext_path argument\n"],
    [['-U', '0', '-o', "ext_path=$dir/a"], 1,
        "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\n"
        . "failed to parse ext_path argument\n"],
    [['-U', '0', '-o', "ext_path=$dir/a:64m:fast"], 1,
        "Unknown extstore bucket: fast\nfailed to parse ext_path argument\n"],
    [['-U', '0', '-o', 'ext_path'], 1, "missing argument to ext_path, ie: ext_path=/d/file:5G\n"],
    [['-U', '11211', '-o', "ext_path=$dir/a:64m"], 64,
        "Cannot use UDP with extstore enabled (-U 0 to disable)\n"],
    [['-U', '0', '-I', '8m', '-o', "ext_path=$dir/a:64m"], 64,
        "-I (item_size_max: 8388608) cannot be larger than ext_wbuf_size: 4194304\n"],
    [['-U', '0', '-o', "ext_page_size=3,ext_path=$dir/a:64m"], 1,
        "Failed to initialize external storage: page_size must be divisible by wbuf_size\n"],
    [['-U', '0', '-o', "ext_path=$dir/no/such/dir:64m"], 1,
        "Failed to initialize external storage: failed to open file\n"
        . "extstore open: No such file or directory\n"],
    [['-U', '0', '-o', 'ext_thread=1'], 1, "Illegal suboption \"ext_thread=1\"\n"],
);
for my $case (@cases) {
    my ($args, $rc, $err) = @$case;
    my $name = join(' ', @$args);
    $name =~ s/\Q$dir\E/DIR/g;
    my $r = run_binary(@$args, '-s', $sock);
    is($r->{err}, $err, "'$name': stderr");
    is($r->{rc}, $rc, "'$name': exit status $rc");
    ok(!$r->{timed_out} && !-e $sock, "'$name': did not start");
}

# A file in use is locked against a second server.
my $file = "$dir/ext";
my $server = new_memcached("-U 0 -o ext_path=$file:64m");
my $r = run_binary('-U', '0', '-o', "ext_path=$file:64m", '-s', $sock);
is($r->{rc}, 1, 'a second server on the same file: exit status 1');
like($r->{err}, qr/\AFailed to initialize external storage: failed to open file\nextstore open: /,
    'refused: the file is locked');
my $s = $server->sock;
print $s "version\r\n";
like(scalar <$s>, qr/^VERSION /, 'the first server serves on');
undef $server;

# -e with extstore: a graceful stop writes the metadata, but the next start does not reuse
# the memory while values may be on flash.
my $mem = "$dir/mem";
my $args = "-m 64 -U 0 -e $mem -o ext_path=$dir/ext2:64m";
$server = new_memcached($args);
$s = $server->sock;
print $s "set k 0 0 1\r\nv\r\n";
is(scalar <$s>, "STORED\r\n", 'stored before the stop');
$server->graceful_stop;
$server->wait_exit(10);
ok(-e "$mem.meta", 'the metadata was written at the graceful stop');
# A restart within the second of the stop is refused as a clock problem.
MemcachedTest::sleep(1.2);
$r = run_binary(split(' ', $args), '-s', $sock, '-vv');
like($r->{err}, qr/^\[restart\] memory restart with extstore not presently supported\.$/m,
    'the restart says why it starts empty');
$server = new_memcached($args);
$s = $server->sock;
print $s "get k\r\n";
is(scalar <$s>, "END\r\n", 'and the cache is empty');

done_testing();
