#!/usr/bin/env perl
# -o drop_privileges: seccomp filters on the dispatcher and every worker. A
# worker that makes a syscall off its list (the debug build's `misbehave`
# opens a TCP socket) kills the process with C's message; everything a client
# or an operator normally does keeps working under the filters.
#
# The part headed "beyond C" is this port's own: C 1.6.45's filters kill the
# process when SIGHUP reloads the -Y file, when a daemon removes its pid file
# at exit, and (on glibc 2.34 or later, which starts threads with clone3) when
# `lru_crawler enable` restarts the crawler thread from a worker.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use File::Temp qw(tempdir);
use IO::Select;

plan skip_all => 'this build has no seccomp filter' unless supports_drop_priv();

my $tmp = tempdir(CLEANUP => 1);

sub talk {
    my ($sock, $send) = @_;
    print $sock $send;
    my ($got) = mem_drain($sock);
    return $got;
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or return '';
    local $/;
    return <$fh> // '';
}

# Servers here get the strict lists: no relaxed_privileges (which the harness
# adds to debug builds unless told not to).
local $ENV{T_MEMD_DROP_PRIVILEGES} = 1;

# ---- a forbidden syscall kills the process ----
{
    my $err = "$tmp/misbehave.err";
    my $server = new_memcached('-o drop_privileges', undef, { stderr => $err });
    my $sock = $server->sock;
    is(mem_stats($sock, 'settings')->{drop_privileges}, 'yes', "stats settings shows it");
    print $sock "misbehave\r\n";
    my ($got, $eof) = mem_drain($sock, 3);
    ok($eof && $got eq '', "misbehave: the connection dies unanswered");
    for (1 .. 50) {
        last unless $server->is_running;
        MemcachedTest::sleep(0.1);
    }
    ok(!$server->is_running, "and the server with it");
    like(slurp($err),
        qr/^Seccomp policy failure\. Caught syscall \d{3}\. This is either an exploit attempt, or your system is not supported yet\.$/m,
        "C's message names the syscall");
}

# Without the filter the same command is answered.
{
    local $ENV{T_MEMD_DROP_PRIVILEGES} = 0;
    my $server = new_memcached('-o no_drop_privileges');
    my $sock = $server->sock;
    is(talk($sock, "misbehave\r\n"), "ERROR\r\n", "misbehave unfiltered: ERROR");
    is(mem_stats($sock, 'settings')->{drop_privileges}, 'no', "stats settings: no");
}

# ---- what clients and operators do keeps working ----
{
    my $err = "$tmp/work.err";
    my $server = new_memcached('-o drop_privileges -A -I 2m', undef, { stderr => $err });
    my $sock = $server->sock;
    is(talk($sock, "set a 0 0 1\r\nx\r\nget a\r\n"), "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        "set and get");
    my $big = 'v' x (1024 * 1024 + 17);
    print $sock "set big 0 0 " . length($big) . "\r\n$big\r\n";
    is(scalar <$sock>, "STORED\r\n", "a chunked 1 MiB value");
    mem_get_is($sock, 'big', $big);
    for my $type ('', 'settings', 'items', 'slabs', 'sizes', 'conns') {
        my $stats = mem_stats($sock, $type);
        ok(scalar(keys %$stats) > 0, "stats $type");
    }
    is(talk($sock, "ms m 2 T0\r\nhi\r\nmg m v\r\nma n N0 J13\r\n"),
        "HD\r\nVA 2\r\nhi\r\nHD\r\n", "meta commands");
    is(talk($sock, "flush_all\r\nverbosity 0\r\nlru mode flat\r\n"), "OK\r\nOK\r\nOK\r\n",
        "admin commands");
    my $w = $server->new_sock;
    is(talk($w, "watch mutations\r\n"), "OK\r\n", "watch");
    talk($sock, "set b 0 0 1\r\ny\r\n");
    my ($line) = mem_drain($w);
    like($line, qr/^ts=\S+ gid=\d+ type=item_store key=b /, "watch streams a line");
    is(talk($sock, "lru_crawler crawl all\r\n"), "OK\r\n", "crawler crawl");
    print $sock "lru_crawler metadump all\r\n";
    my ($dump) = mem_drain($sock, 1);
    like($dump, qr/^OK\r\nkey=b exp=-1 .*\nEND\r\n\z/s, "crawler metadump");
    my $many = [map { $server->new_sock } 1 .. 20];
    is(talk($many->[19], "version\r\n"), "VERSION 1.6.45\r\n", "20 more connections");
    ok($server->is_running, "still running");
    print $sock "shutdown\r\n";
    for (1 .. 50) {
        last unless $server->is_running;
        MemcachedTest::sleep(0.1);
    }
    ok(!$server->is_running, "shutdown stops it");
    # Beyond C: C 1.6.45's filter refuses an openat somewhere in this run.
    unlike(slurp($err), qr/Seccomp policy failure/, "no syscall was refused");
}

# ---- beyond C ----
{
    my $auth = "$tmp/auth";
    open(my $fh, '>', $auth) or die;
    print $fh "u:p\n";
    close($fh);
    my $err = "$tmp/beyond.err";
    my $server = new_memcached("-o drop_privileges -Y $auth -U 0", undef, { stderr => $err });
    my $sock = $server->sock;
    is(talk($sock, "set x 0 0 3\r\nu p\r\n"), "STORED\r\n", "-Y under the filter");
    open($fh, '>', $auth) or die;
    print $fh "v:q\n";
    close($fh);
    kill('HUP', $server->pid);
    my $ok = 0;
    for (1 .. 30) {
        my $s = $server->new_sock;
        if (talk($s, "set x 0 0 3\r\nv q\r\n") eq "STORED\r\n") {
            $ok = 1;
            last;
        }
        MemcachedTest::sleep(0.1);
    }
    ok($ok, "SIGHUP reloads the auth file under the filter");
    is(talk($sock, "lru_crawler disable\r\n"), "OK\r\n", "crawler disabled");
    my $reply = '';
    for (1 .. 30) {
        $reply = talk($sock, "lru_crawler enable\r\n");
        last if $reply eq "OK\r\n";
        MemcachedTest::sleep(0.1);
    }
    is($reply, "OK\r\n", "and restarted from a worker");
    is(talk($sock, "lru_crawler crawl all\r\n"), "OK\r\n", "the new crawler runs");
    ok($server->is_running, "still running");
    unlike(slurp($err), qr/Seccomp policy failure/, "no syscall was refused");

    # TLS: OpenSSL writes records with write(2) from the worker.
    SKIP: {
        skip "no TLS or IO::Socket::SSL", 2
            unless supports_tls() && eval { require IO::Socket::SSL; 1 };
        system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
             . "-keyout $tmp/k.pem -out $tmp/c.pem >/dev/null 2>&1");
        my $tport = free_port();
        my $terr = "$tmp/tls.err";
        my $tsrv = new_memcached("-o drop_privileges -Z -o ssl_chain_cert=$tmp/c.pem,"
            . "ssl_key=$tmp/k.pem -U 0 -l 127.0.0.1", $tport, { stderr => $terr });
        my $t = IO::Socket::SSL->new(PeerAddr => "127.0.0.1:$tport", Timeout => 5,
            SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE());
        my $v = $t ? do { print $t "version\r\n"; scalar <$t> } : '';
        is($v, "VERSION 1.6.45\r\n", "TLS under the filter");
        unlike(slurp($terr), qr/Seccomp policy failure/, "no syscall was refused");
    }

    my $pidfile = "$tmp/mc.pid";
    my $port = free_port();
    my @root = $< == 0 ? ('-u', 'root') : ();
    system(get_memcached_exe(), @root, '-d', '-P', $pidfile, '-p', $port, '-U', '0',
           '-l', '127.0.0.1', '-o', 'drop_privileges');
    for (1 .. 50) {
        last if -s $pidfile;
        MemcachedTest::sleep(0.1);
    }
    my $pid = slurp($pidfile) =~ /(\d+)/ ? $1 : 0;
    ok($pid, "a daemon under the filter wrote its pid file");
    kill('TERM', $pid) if $pid;
    for (1 .. 50) {
        last unless -e $pidfile;
        MemcachedTest::sleep(0.1);
    }
    ok(!-e $pidfile, "and removes it as it stops");
}

done_testing();
