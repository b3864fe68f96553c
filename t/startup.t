#!/usr/bin/env perl
# Command line handling: -V, -h, -i, option validation (messages, exit codes)
# and options that change "stats settings".

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);

# The version the binary must report. The C reference used to validate these
# tests was built from an untagged checkout and reports "UNKNOWN"; run with
# MEMCACHED_EXPECT_VERSION=UNKNOWN against it.
my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';

my $exe = get_memcached_exe();
my $tmp = tempdir(CLEANUP => 1);
my @as_root = $< == 0 ? ('-u', 'root') : ();

# Run the server binary as "./memcached-debug ARGS" (argv[0] shows in getopt
# messages). Returns { rc, signal, out, err, timed_out }. A server that does
# start is killed after $timeout seconds.
my $run_count = 0;
sub run_binary {
    my ($args, %o) = @_;
    my $timeout = $o{timeout} || 5;
    my $argv0 = $o{argv0} || './memcached-debug';
    my $path = $o{exe} || $exe;
    $run_count++;
    my ($out_file, $err_file) = ("$tmp/out.$run_count", "$tmp/err.$run_count");
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', $out_file);
        open(STDERR, '>', $err_file);
        { no warnings 'exec'; exec { $path } $argv0, @$args; }
        POSIX::_exit(127);
    }
    my $deadline = time() + $timeout;
    my $timed_out = 0;
    while (waitpid($pid, WNOHANG) == 0) {
        if (time() > $deadline) {
            $timed_out = 1;
            kill('KILL', $pid);
            waitpid($pid, 0);
            last;
        }
        MemcachedTest::sleep(0.01);
    }
    my $status = $?;
    my %r = (
        rc        => $status >> 8,
        signal    => $status & 127,
        timed_out => $timed_out,
    );
    for my $k (qw(out err)) {
        my $file = $k eq 'out' ? $out_file : $err_file;
        open(my $fh, '<', $file) or die "$file: $!";
        local $/;
        $r{$k} = <$fh>;
        $r{$k} = '' unless defined $r{$k};
        close($fh);
    }
    return \%r;
}

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return;
    local $/;
    my $text = <$fh>;
    close($fh);
    return $text;
}

# A reference text whose first line names the version is compared with the
# version this run expects.
sub versioned_fixture {
    my ($file) = @_;
    my $text = slurp($file);
    return unless defined $text;
    $text =~ s/\Amemcached \S+\n/memcached $version\n/;
    return $text;
}

# ---------------------------------------------------------------------------
# -V, -h, -i

{
    my $r = run_binary(['-V']);
    is($r->{out}, "memcached $version\n", "-V prints the version");
    is($r->{err}, '', "-V prints nothing on stderr");
    is($r->{rc}, 0, "-V exits 0");

    $r = run_binary(['--version']);
    is($r->{out}, "memcached $version\n", "--version prints the version");

    # Options are handled in order: -V ends processing before later errors.
    $r = run_binary(['-V', '-c', '0']);
    is($r->{out}, "memcached $version\n", "-V before a bad option wins");
    is($r->{rc}, 0, "... and exits 0");

    $r = run_binary(['-c', '0', '-V']);
    is($r->{out}, '', "a bad option before -V wins");
    is($r->{rc}, 1, "... and exits 1");

    # Warnings about options are printed before -V is reached.
    $r = run_binary(['-t', '65', '-V']);
    is($r->{err},
        "WARNING: Setting a high number of workerthreads is not recommended.\n"
        . " Set this value to the number of cores in your machine or less.\n",
        "-t above 64 warns");
    is($r->{out}, "memcached $version\n", "... and still runs -V");

    $r = run_binary(['-o', 'resp_obj_mem_limit=1', '-V']);
    is($r->{err},
        "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,\n",
        "resp_obj_mem_limit is deprecated");
    is($r->{rc}, 0, "... but accepted");
}

{
    is(run_help(), 0, "run_help: -h exits 0");

    my $r = run_binary(['-h']);
    is($r->{rc}, 0, "-h exits 0");
    is($r->{err}, '', "-h prints nothing on stderr");
    like($r->{out}, qr/\Amemcached \Q$version\E\n-p, --port=<num> /,
        "-h starts with the version and the -p option");
    like($r->{out}, qr/^-s, --unix-socket=<file>/m, "-h documents -s");
    like($r->{out}, qr/relaxed_privileges/, "debug build documents relaxed_privileges");

    my $fixture = versioned_fixture("$Bin/data/help-debug.txt");
    SKIP: {
        skip "t/data/help-debug.txt is missing", 1 unless defined $fixture;
        is($r->{out}, $fixture, "-h of memcached-debug matches t/data/help-debug.txt");
    }

    my $long = run_binary(['--help']);
    is($long->{out}, $r->{out}, "--help prints the same as -h");

    # The defaults shown reflect options given before -h.
    my $after = run_binary(['-p', '12345', '-t', '7', '-h']);
    like($after->{out}, qr/^-p, --port=<num>\s+TCP port to listen on \(default: 12345\)$/m,
        "-h shows a -p given before it");
    like($after->{out}, qr/^-t, --threads=<num>\s+number of threads to use \(default: 7\)$/m,
        "-h shows a -t given before it");

    (my $plain = $exe) =~ s{[^/]+\z}{memcached};
    my $plain_fixture = versioned_fixture("$Bin/data/help.txt");
    SKIP: {
        skip "./memcached or t/data/help.txt is missing", 1
            unless -x $plain && defined $plain_fixture;
        my $p = run_binary(['-h'], exe => $plain, argv0 => './memcached');
        is($p->{out}, $plain_fixture, "-h of memcached matches t/data/help.txt");
    }

    my $lic = run_binary(['-i']);
    is($lic->{rc}, 0, "-i exits 0");
    like($lic->{out}, qr/\Amemcached \Q$version\E\n\nCopyright/, "-i prints the license");
    my $lic_fixture = versioned_fixture("$Bin/data/license.txt");
    SKIP: {
        skip "t/data/license.txt is missing", 1 unless defined $lic_fixture;
        is($lic->{out}, $lic_fixture, "-i matches t/data/license.txt");
    }
}

# ---------------------------------------------------------------------------
# Rejected options: [args, exit code, stdout, stderr]

my $getopt_tail = "Illegal argument \"?\"\n";
my @rejected = (
    [['-c', '0'], 1, '', "Maximum connections must be greater than 0\n"],
    [['-c', '-1'], 1, '', "Maximum connections must be greater than 0\n"],
    [['-c', 'abc'], 1, '', "Maximum connections must be greater than 0\n"],
    [['-t', '0'], 1, '', "Number of threads must be greater than 0\n"],
    [['-R', '0'], 1, '', "Number of requests per event must be greater than 0\n"],
    [['-f', '1'], 1, '', "Factor must be greater than 1\n"],
    [['-f', '1.0x'], 1, '', "Factor must be greater than 1\n"],
    [['-n', '0'], 1, '', "Chunk size must be greater than 0\n"],
    [['-D', ''], 1, '', "No delimiter specified\n"],
    [['-N', '0'], 1, '', "Maximum number of NAPI IDs must be greater than 0\n"],
    [['-N', '8', '-t', '4'], 64, '',
        "Number of napi_ids(8) cannot be greater than number of threads(4)\n"],
    [['-B', 'http'], 64, '',
        "Invalid value for binding protocol: http\n -- should be one of auto, binary, or ascii\n"],
    [['-Z', '-p', '0'], 64, '', "ERROR: You cannot enable SSL without a TCP port.\n"],
    [['-o', 'ssl_key'], 1, '', "Missing ssl_key argument\n"],
    [['-o', 'ssl_verify_mode=5'], 1, '', "Invalid ssl_verify_mode. Use help to see valid options.\n"],
    [['-o', 'ssl_min_version=x'], 1, '', "could not parse argument to ssl_min_version\n"],
    [['-o', 'ssl_wbuf_size'], 1, '', "Missing ssl_wbuf_size argument\n"],
    [['-S', '-B', 'ascii'], 64, '', "ERROR: You cannot allow the ASCII protocol while using SASL.\n"],
    [['-S', '-U', '11211'], 64, '', "ERROR: Cannot enable UDP while using binary SASL authentication.\n"],
    [['-I', '1000'], 64, '', "Item max size cannot be less than 1024 bytes.\n"],
    [['-I', '256m'], 64, '', "Cannot set item size limit higher than 1/2 of memory max.\n"],
    [['-m', '4096', '-I', '2000m'], 64, '', "Cannot set item size limit higher than a gigabyte.\n"],
    [['-I', '1k'], 64, '',
        "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 1024)\n"],
    [['-p', '70000'], 64, '', "ERROR: Invalid port number 70000.\n"],
    [['-o', 'badopt'], 1, '', "Illegal suboption \"badopt\"\n"],
    [['-o', 'hashpower'], 1, '', "Missing numeric argument for hashpower\n"],
    [['-o', 'hashpower=1'], 1, '', "Initial hashtable multiplier of 1 is too low\n"],
    [['-o', 'hashpower=x'], 1, '', "Initial hashtable multiplier of 0 is too low\n"],
    [['-o', 'hashpower=65'], 1, '',
        "Initial hashtable multiplier of 65 is too high\n"
        . "Choose a value based on \"STAT hash_power_level\" from a running instance\n"],
    [['-o', 'idle_timeout'], 1, '', "Missing numeric argument for idle_timeout\n"],
    [['-o', 'slab_automove=3'], 1, '', "slab_automove must be between 0 and 2\n"],
    [['-o', 'slab_automove_window=2'], 1, '', "slab_automove_window must be > 2 and < 1800\n"],
    [['-o', 'tail_repair_time=5'], 1, '', "Cannot set tail_repair_time to less than 10 seconds\n"],
    [['-o', 'hash_algorithm=foo'], 1, '', "Unknown hash_algorithm option (jenkins, murmur3, xxh3)\n"],
    [['-o', 'lru_crawler_sleep=2000000'], 1, '', "LRU crawler sleep must be between 0 and 1 second\n"],
    [['-o', 'lru_crawler_tocrawl=x'], 1, '', "lru_crawler_tocrawl takes a numeric 32bit value\n"],
    [['-o', 'warm_max_factor=0'], 1, '', "warm_max_factor must be > 0\n"],
    [['-o', 'watcher_logbuf_size=x'], 1, '', "could not parse argument to watcher_logbuf_size\n"],
    [['-o', 'read_buf_mem_limit=abc'], 1, '', "could not parse argument to read_buf_mem_limit\n"],
    [['-o', 'hot_lru_pct=70,warm_lru_pct=20'], 64, '',
        "hot_lru_pct + warm_lru_pct cannot be more than 80% combined\n"],
    [['-o', 'no_modern,temporary_ttl=5'], 64, '', "temporary_ttl requires lru_maintainer to be enabled\n"],
    [['-o', 'slab_chunk_max=3'], 64, '',
        "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 3072)\n"],
    [['-o', 'slab_chunk_max=2048'], 1, '', "slab_chunk_max must be specified in kilobytes.\n"],
    [['-x'], 1, '', "./memcached-debug: invalid option -- 'x'\n$getopt_tail"],
    [['-p'], 1, '', "./memcached-debug: option requires an argument -- 'p'\n$getopt_tail"],
    [['--port'], 1, '', "./memcached-debug: option '--port' requires an argument\n$getopt_tail"],
    [['--badlong'], 1, '', "./memcached-debug: unrecognized option '--badlong'\n$getopt_tail"],
    [['-t', '65', '-c', '0'], 1, '',
        "WARNING: Setting a high number of workerthreads is not recommended.\n"
        . " Set this value to the number of cores in your machine or less.\n"
        . "Maximum connections must be greater than 0\n"],
    # Each hash bucket must map to one item lock: -t 4 takes 2^12 locks.
    [['-o', 'hashpower=12', '-p', '0', '-U', '0'], 1, '',
        "Hash table power size (12) cannot be equal to or less than item lock table (12)\n"
        . "Item lock table grows with `-t N` (worker threadcount)\n"
        . "Hash table grows with `-o hashpower=N` \n"],
    [['-t', '11', '-o', 'hashpower=14', '-p', '0', '-U', '0'], 1, '',
        "Hash table power size (14) cannot be equal to or less than item lock table (14)\n"
        . "Item lock table grows with `-t N` (worker threadcount)\n"
        . "Hash table grows with `-o hashpower=N` \n"],
);

for my $case (@rejected) {
    my ($args, $rc, $out, $err) = @$case;
    my $r = run_binary([@as_root, @$args]);
    my $name = join(' ', @$args);
    is($r->{err}, $err, "'$name': stderr");
    is($r->{out}, $out, "'$name': stdout");
    is($r->{rc}, $rc, "'$name': exit code $rc");
}

SKIP: {
    skip "privilege checks need root", 4 unless $< == 0;
    my $r = run_binary(['-p', '0', '-U', '0']);
    is($r->{err}, "must add '-u root' to start as root\n", "root needs -u");
    is($r->{rc}, 64, "... exit code 64");
    $r = run_binary(['-u', 'no-such-user-here', '-p', '0', '-U', '0']);
    is($r->{err}, "can't find the user no-such-user-here to switch to\n", "unknown -u user");
    is($r->{rc}, 67, "... exit code 67");
}

# -u: a server started as root switches to the given user.
SKIP: {
    my @pw = getpwnam('nobody');
    skip "needs root and a 'nobody' user", 4 unless $< == 0 && @pw && -r "/proc/$$/status";
    my ($uid, $gid) = @pw[2, 3];
    my $port = free_port();
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDERR, '>', "$tmp/user.err");
        open(STDOUT, '>&', \*STDERR);
        (my $timedrun = $exe) =~ s{[^/]+\z}{timedrun};
        { no warnings 'exec'; exec($timedrun, 30, $exe, '-u', 'nobody', '-o', 'relaxed_privileges',
            '-l', '127.0.0.1', '-p', $port, '-U', '0'); }
        POSIX::_exit(127);
    }
    my $server = Memcached::Handle->new(pid => $pid, host => '127.0.0.1', port => $port);
    my $sock;
    for (1 .. 250) {
        last if $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
        MemcachedTest::sleep(0.02);
    }
    ok($sock, "-u nobody: server up");
    my $mpid = $sock ? mem_stats($sock)->{pid} : 0;
    my $status = slurp("/proc/$mpid/status") // '';
    my ($uids) = $status =~ /^Uid:\s+(.*)$/m;
    my ($gids) = $status =~ /^Gid:\s+(.*)$/m;
    my ($groups) = $status =~ /^Groups:[ \t]*(.*)$/m;
    is(join(' ', split(' ', $uids // '')), join(' ', ($uid) x 4), "-u nobody: all user ids switched");
    is(join(' ', split(' ', $gids // '')), join(' ', ($gid) x 4), "-u nobody: all group ids switched");
    is($groups, '', "-u nobody: supplementary groups dropped");
}

# Listener failures exit with 71.
{
    my $busy = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, ReuseAddr => 1,
    ) or die "cannot listen: $!";
    my $port = $busy->sockport;
    my $r = run_binary([@as_root, '-l', '127.0.0.1', '-p', $port, '-U', '0']);
    is($r->{err}, "failed to listen on one of interface(s) 127.0.0.1: Address already in use\n",
        "TCP port in use");
    is($r->{rc}, 71, "... exit code 71");
    close($busy);

    $r = run_binary([@as_root, '-l', '127.0.0.1:notaport', '-U', '0']);
    like($r->{err},
        qr/\AInvalid port number: "notaport"\nfailed to listen on one of interface\(s\) 127\.0\.0\.1:notaport: .*\n\z/,
        "bad port in -l");
    is($r->{rc}, 71, "... exit code 71");

    $r = run_binary([@as_root, '-s', "$tmp/no-such-dir/sock"]);
    like($r->{err},
        qr{\Abind\(\): No such file or directory\nfailed to listen on UNIX socket: \Q$tmp\E/no-such-dir/sock: .*\n\z},
        "unix socket in a missing directory");
    is($r->{rc}, 71, "... exit code 71");
}

# ---------------------------------------------------------------------------
# Startup through the harness

eval { my $server = new_memcached(); ok($server, "started the server"); };
is($@, '', "basic startup works");

my $quiet = { stderr => "$tmp/server.err" };

eval { my $server = new_memcached("-l fooble", undef, $quiet); };
like($@, qr/^Failed to connect/, "illegal -l address stops the server");

eval { my $server = new_memcached("-l 127.0.0.1"); ok($server->sock, "-l 127.0.0.1 listens"); };
is($@, '', "-l 127.0.0.1 works");

for my $bad ('-c 0', '-c -1', '-t 0', '-B http') {
    eval { my $server = new_memcached($bad, undef, $quiet); };
    like($@, qr/^Failed to connect/, "server refuses to start with $bad");
}

# Options that show in "stats settings".
sub settings_of {
    my ($args) = @_;
    my $server = new_memcached($args, undef, { stderr => "$tmp/server.err" });
    return mem_stats($server->sock, 'settings');
}

{
    my $s = settings_of('-C -b 8675 -B ascii -c 100 -t 2 -R 5 -m 128 -M -A -D / '
        . '-f 1.5 -n 64 -F -X -I 2m -o idle_timeout=5,hashpower=20 -N 2 -vv');
    my %want = (
        maxbytes => 134217728, maxconns => 100, verbosity => 2,
        evictions => 'off', shutdown_command => 'yes', growth_factor => '1.50',
        chunk_size => 64, num_threads => 2, num_threads_per_udp => 2,
        stat_key_prefix => '/', detail_enabled => 'yes', reqs_per_event => 5,
        cas_enabled => 'no', tcp_backlog => 8675, binding_protocol => 'ascii',
        item_size_max => 2097152, hashpower_init => 20, slab_chunk_max => 524288,
        flush_enabled => 'no', dump_enabled => 'no', idle_timeout => 5,
        num_napi_ids => 2,
    );
    for my $k (sort keys %want) {
        is($s->{$k}, $want{$k}, "short options: $k");
    }
}

{
    my $s = settings_of('--conn-limit=100 --threads=2 --enable-shutdown --disable-cas '
        . '--protocol=ascii --max-item-size=2m --verbose=5 --memory-limit=32 '
        . '--disable-evictions --max-reqs-per-event=7 --listen-backlog=33 '
        . '--slab-growth-factor=1.3 --slab-min-size=60 --disable-flush-all '
        . '--disable-dumping --unix-mask=755 --extended=no_modern');
    my %want = (
        maxbytes => 33554432, maxconns => 100, verbosity => 1,
        evictions => 'off', umask => 755, shutdown_command => 'yes',
        growth_factor => '1.30', chunk_size => 60, num_threads => 2,
        reqs_per_event => 7, cas_enabled => 'no', tcp_backlog => 33,
        binding_protocol => 'ascii', item_size_max => 2097152,
        maxconns_fast => 'no', slab_reassign => 'no', slab_automove => 0,
        lru_crawler => 'no', hash_algorithm => 'jenkins',
        lru_maintainer_thread => 'no', lru_segmented => 'no',
        flush_enabled => 'no', dump_enabled => 'no',
    );
    for my $k (sort keys %want) {
        is($s->{$k}, $want{$k}, "long options: $k");
    }
}

{
    my $s = settings_of('-vvv -B auto -o no_modern');
    is($s->{verbosity}, 3, "-vvv counts to 3");
    is($s->{binding_protocol}, 'auto-negotiate', "-B auto");
    is($s->{slab_chunk_max}, 1048576, "no_modern: slab_chunk_max is the page size");
    is($s->{hash_algorithm}, 'jenkins', "no_modern: jenkins hash");

    $s = settings_of('-o hash_algorithm=xxh3,slab_automove=2,lru_crawler_sleep=50,'
        . 'hot_lru_pct=10,warm_lru_pct=30,temporary_ttl=30,read_buf_mem_limit=4');
    is($s->{hash_algorithm}, 'xxh3', "hash_algorithm=xxh3");
    is($s->{slab_automove}, 2, "slab_automove=2");
    is($s->{lru_crawler_sleep}, 50, "lru_crawler_sleep=50");
    is($s->{hot_lru_pct}, 10, "hot_lru_pct=10");
    is($s->{warm_lru_pct}, 30, "warm_lru_pct=30");
    is($s->{temp_lru}, 'yes', "temporary_ttl enables temp_lru");
    is($s->{temporary_ttl}, 30, "temporary_ttl=30");
    is($s->{read_buf_mem_limit}, 4 * 1024 * 1024, "read_buf_mem_limit=4 is megabytes");
}

done_testing();
