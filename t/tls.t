#!/usr/bin/env perl
# TLS (-Z) as C 1.6.45 built with --enable-tls serves it: certificates made
# here with the openssl CLI (a CA, the server's, a client's, an expired one,
# one from another CA); each ssl_verify_mode; btls/mtls/notls listeners side
# by side; refresh_certs and SIGHUP reloads; handshake failures counted and
# never harming other clients; replies larger than the TLS write buffer.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Socket qw(IPPROTO_TCP TCP_CORK);

plan skip_all => 'this build has no TLS' unless supports_tls();
eval { require IO::Socket::SSL; 1 } or plan skip_all => 'IO::Socket::SSL is not installed';
plan skip_all => 'the openssl command is not installed' if system('openssl version >/dev/null 2>&1');

my $tmp = tempdir(CLEANUP => 1);

sub openssl {
    my ($args) = @_;
    system("openssl $args >/dev/null 2>&1") == 0 or die "openssl $args failed";
}

# A CA, and certificates it signs (the server's names 127.0.0.1 and localhost).
sub make_ca {
    my ($name) = @_;
    openssl("req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=$name "
          . "-keyout $tmp/$name.key -out $tmp/$name.crt");
}
sub make_cert {
    my ($name, $ca, $days) = @_;
    openssl("req -newkey rsa:2048 -nodes -subj /CN=$name -keyout $tmp/$name.key "
          . "-out $tmp/$name.csr");
    open(my $fh, '>', "$tmp/$name.ext") or die;
    print $fh "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    close($fh);
    my $when = $days > 0 ? "-days $days" : "-days 1 -not_after 20200101000000Z";
    openssl("x509 -req -in $tmp/$name.csr -CA $tmp/$ca.crt -CAkey $tmp/$ca.key "
          . "-CAcreateserial $when -extfile $tmp/$name.ext -out $tmp/$name.crt");
}
make_ca('ca');
make_ca('otherca');
make_cert('server', 'ca', 30);
make_cert('server2', 'ca', 30);
make_cert('client', 'ca', 30);
make_cert('stranger', 'otherca', 30);
# An expired client certificate (the openssl CLI of Debian 12 cannot date one in the past).
my $have_expired = eval {
    require IO::Socket::SSL::Utils;
    IO::Socket::SSL::Utils->import();
    my ($cert, $key) = IO::Socket::SSL::Utils::CERT_create(
        subject    => { commonName => 'expired' },
        issuer     => [IO::Socket::SSL::Utils::PEM_file2cert("$tmp/ca.crt"),
                       IO::Socket::SSL::Utils::PEM_file2key("$tmp/ca.key")],
        not_before => time() - 10 * 86400,
        not_after  => time() - 86400,
        purpose    => 'client',
    );
    IO::Socket::SSL::Utils::PEM_cert2file($cert, "$tmp/expired.crt");
    IO::Socket::SSL::Utils::PEM_key2file($key, "$tmp/expired.key");
    1;
};
ok($have_expired, "an expired client certificate made");

my $certs = "-Z -o ssl_chain_cert=$tmp/server.crt,ssl_key=$tmp/server.key,ssl_ca_cert=$tmp/ca.crt";

sub tls_sock {
    my ($port, %opt) = @_;
    my %cert = $opt{cert} ? (SSL_cert_file => "$tmp/$opt{cert}.crt",
                             SSL_key_file => "$tmp/$opt{cert}.key") : ();
    return IO::Socket::SSL->new(
        PeerAddr        => "127.0.0.1:$port",
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
        Timeout         => 5,
        %cert,
    );
}

# One request and its reply line(s); "" when the connection is dead.
sub ask {
    my ($sock, $send, $lines) = @_;
    return '' unless $sock;
    print $sock $send;
    my $got = '';
    for (1 .. ($lines // 1)) {
        my $l = <$sock>;
        last unless defined $l;
        $got .= $l;
    }
    return $got;
}

# Writes each string as its own TLS record, all leaving in one TCP segment (corked), so the
# server reads them together.
sub send_records {
    my ($sock, @records) = @_;
    setsockopt($sock, IPPROTO_TCP, TCP_CORK, 1) or die "TCP_CORK: $!";
    $sock->syswrite($_) for @records;
    setsockopt($sock, IPPROTO_TCP, TCP_CORK, 0) or die "TCP_CORK: $!";
}

# Reply lines up to and including `$last` (within 5 s), or what came before the time ran out.
sub lines_until {
    my ($sock, $last) = @_;
    my $got = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 5;
        while (defined(my $l = <$sock>)) {
            $got .= $l;
            last if $l eq $last;
        }
        alarm 0;
    };
    return $got;
}

sub bad_tls {
    my ($st) = @_;
    return ($st->{ssl_proto_errors} // 0) + ($st->{ssl_handshake_errors} // 0);
}

sub plain_stats {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or return {};
    return mem_stats($s);
}

# ---- a TLS port beside a plain one ----
my $plain_port = free_port();
my $tls_port = free_port();
my $btls_port = free_port();
my $mtls_port = free_port();
my $server = new_memcached(
    "$certs -l notls:127.0.0.1:$plain_port,127.0.0.1:$tls_port,"
  . "btls:127.0.0.1:$btls_port,mtls:127.0.0.1:$mtls_port -U 0",
    $tls_port);
{
    my $s = tls_sock($tls_port);
    ok($s, "TLS handshake on the default listener");
    is(ask($s, "set foo 0 0 3\r\nbar\r\n"), "STORED\r\n", "set over TLS");
    is(ask($s, "get foo\r\n", 3), "VALUE foo 0 3\r\nbar\r\nEND\r\n", "get over TLS");
    is(ask($s, "version\r\n"), "VERSION 1.6.45\r\n", "version over TLS");
    my $p = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$plain_port");
    is(ask($p, "get foo\r\n", 3), "VALUE foo 0 3\r\nbar\r\nEND\r\n",
        "notls listener serves plain text, same cache");
    # Pipelined requests and a reply far larger than the 16 KiB write buffer.
    my $big = join('', map { chr(65 + $_ % 26) } 0 .. 300_000);
    print $s "set big 0 0 " . length($big) . "\r\n$big\r\n";
    is(scalar <$s>, "STORED\r\n", "a 300 KB value over TLS");
    print $s "get big\r\nget big\r\nversion\r\n";
    my $ok = 1;
    for (1 .. 2) {
        my $h = <$s>;
        my $data = '';
        while (length($data) < length($big) + 2) {
            my $n = read($s, my $chunk, length($big) + 2 - length($data));
            last unless $n;
            $data .= $chunk;
        }
        my $end = <$s>;
        $ok &&= $h eq "VALUE big 0 " . length($big) . "\r\n" && $data eq "$big\r\n"
            && $end eq "END\r\n";
    }
    ok($ok, "two large replies pipelined arrive whole");
    is(scalar <$s>, "VERSION 1.6.45\r\n", "and the next reply after them");
    my $mg = '';
    print $s join('', map { "mg k$_ v\r\n" } 1 .. 50) . "mn\r\n";
    while (defined(my $l = <$s>)) {
        $mg .= $l;
        last if $l eq "MN\r\n";
    }
    is($mg, ("EN\r\n" x 50) . "MN\r\n", "50 pipelined meta misses");
    # Requests split over TLS records that reach the server in one segment (corked): all of
    # them are answered though the bytes after the first record raise no further read event.
    send_records($s, "mg k1 v\r\nmg k2", " v\r\nmn", "\r\n");
    is(lines_until($s, "MN\r\n"), "EN\r\nEN\r\nMN\r\n", "requests split over records sent together");
    # More quiet requests than one event serves (-R 20), one record each, in one segment:
    # the connection yields with its read buffer empty and the rest held by OpenSSL.
    send_records($s, (map { "set quiet$_ 0 0 1 noreply\r\nq\r\n" } 1 .. 30), "mn\r\n");
    is(lines_until($s, "MN\r\n"), "MN\r\n", "quiet requests past the per-event limit, a record each");
    my $stats = mem_stats($s);
    is($stats->{ssl_handshake_errors}, 0, "no handshake errors so far");
    like($stats->{time_since_server_cert_refresh}, qr/^\d+$/, "time_since_server_cert_refresh");
    ok(!exists $stats->{ssl_new_sessions}, "ssl_new_sessions only with ssl_session_cache");
    my $set = mem_stats($s, 'settings');
    is($set->{ssl_enabled}, 'yes', "stats settings: ssl_enabled");
    is($set->{ssl_chain_cert}, "$tmp/server.crt", "stats settings: ssl_chain_cert");
    is($set->{ssl_ca_cert}, "$tmp/ca.crt", "stats settings: ssl_ca_cert");
    is($set->{ssl_min_version}, 'tlsv1.2', "stats settings: ssl_min_version");
}

# Side threads write through the session: watch (logger) and metadump (crawler).
{
    my $w = tls_sock($tls_port);
    is(ask($w, "watch mutations\r\n"), "OK\r\n", "watch over TLS");
    my $s = tls_sock($tls_port);
    ask($s, "set w1 0 0 1\r\nx\r\n");
    like(scalar <$w>, qr/^ts=\S+ gid=\d+ type=item_store key=w1 /, "a watch line arrives encrypted");
    print $s "lru_crawler metadump all\r\n";
    my $dump = '';
    while (defined(my $l = <$s>)) {
        $dump .= $l;
        last if $l eq "END\r\n";
    }
    like($dump, qr/key=w1 exp=-1 /, "metadump over TLS");
    is(ask($s, "version\r\n"), "VERSION 1.6.45\r\n", "the connection comes back after the dump");
    # A command sent in its own record right behind the dump's, in the same segment: it
    # waits in OpenSSL while the crawler has the connection, and is answered after.
    send_records($s, "lru_crawler metadump all\r\n", "version\r\n");
    like(lines_until($s, "END\r\n"), qr/END\r\n$/, "the dump ends");
    my $after = lines_until($s, "VERSION 1.6.45\r\n");
    is($after, "VERSION 1.6.45\r\n", "a command read ahead behind a metadump");
}

# A client that goes away without close_notify ends its connection as one that sent it:
# "reason=normal", as C logs it, with no TLS error logged or counted.
{
    my $w = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$plain_port");
    is(ask($w, "watch connevents\r\n"), "OK\r\n", "watch connevents");
    my $before = bad_tls(plain_stats($plain_port));
    for my $how ('without close_notify', 'with close_notify') {
        my $s = tls_sock($tls_port);
        is(ask($s, "version\r\n"), "VERSION 1.6.45\r\n", "a client $how");
        my $port = $s->sockport;
        $s->close(SSL_no_shutdown => $how =~ /without/ ? 1 : 0);
        my ($line, $errors) = ('', '');
        eval {
            local $SIG{ALRM} = sub { die "timeout\n" };
            alarm 5;
            while (defined(my $l = <$w>)) {
                $errors .= $l if $l =~ /type=conntlserr /;
                if ($l =~ /type=conn_close .*rport=$port /) { $line = $l; last }
            }
            alarm 0;
        };
        like($line, qr/ reason=normal /, "closes with reason=normal ($how)");
        is($errors, '', "and logs no TLS error ($how)");
    }
    is(bad_tls(plain_stats($plain_port)), $before, "and counts no TLS error");
}

# Plain text on a TLS port, and garbage, are dropped; other clients go on.
{
    my $good = tls_sock($tls_port);
    my $p = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tls_port");
    print $p "get foo\r\n";
    my ($got, $eof) = mem_drain($p, 2);
    ok($eof && $got !~ /VALUE|END/, "plain text on a TLS port gets no reply and is closed");
    $p = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tls_port");
    print $p "\x16\x03\x01\x00\x05" . ("\xff" x 5);
    ($got, $eof) = mem_drain($p, 2);
    ok($eof, "a broken client hello is closed");
    # A client hello fed one byte at a time still completes.
    my $slow = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tls_port");
    my $hello = capture_client_hello();
    for my $byte (split //, $hello) {
        syswrite($slow, $byte);
        select(undef, undef, undef, 0.002);
    }
    ($got, $eof) = mem_drain($slow, 1);
    ok(!$eof && length($got) > 0 && substr($got, 0, 1) eq "\x16",
        "a client hello split byte by byte gets the server hello");
    is(ask($good, "get foo\r\n", 3), "VALUE foo 0 3\r\nbar\r\nEND\r\n",
        "an established TLS client is unaffected");
    my $stats = {};
    for (1 .. 20) {
        $stats = plain_stats($plain_port);
        last if bad_tls($stats) >= 2;
        MemcachedTest::sleep(0.1);
    }
    # Caught by the dispatcher's first handshake step or by a worker's read, depending on
    # whether the bytes arrived before the accept.
    is(bad_tls($stats), 2, "both bad clients counted (handshake or protocol errors)");
}

# A ClientHello as a real client sends it, recorded through a local relay.
sub capture_client_hello {
    my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0', ReuseAddr => 1)
        or die;
    my $port = $l->sockport;
    my $pid = fork();
    if ($pid == 0) {
        IO::Socket::SSL->new(PeerAddr => "127.0.0.1:$port", Timeout => 2,
            SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE());
        POSIX::_exit(0);
    }
    my $c = $l->accept;
    my ($hello) = mem_drain($c, 1);
    close($c);
    waitpid($pid, 0);
    return $hello;
}

# Bad handshakes in a loop do not grow the server.
{
    my $pid = `pgrep -P ${\ $server->pid} -x memcached-debug` || `pgrep -P ${\ $server->pid}`;
    chomp $pid;
    my $rss = sub {
        open(my $fh, '<', "/proc/$pid/status") or return 0;
        while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
        return 0;
    };
    my $garbage = sub {
        for (1 .. 200) {
            my $p = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tls_port") or next;
            print $p "\x16\x03\x01\x00\x05" . ("\xff" x 5);
            mem_drain($p, 0.2);
        }
    };
    $garbage->();
    my $before = $rss->();
    $garbage->();
    $garbage->();
    my $after = $rss->();
    ok($before > 0 && $after - $before < 1024,
        "600 bad handshakes: RSS $before -> $after kB");
}

# ---- listener modes: btls never asks for a certificate, mtls requires one ----
{
    ok(tls_sock($btls_port), "btls: no client certificate needed");
    my $m = tls_sock($mtls_port);
    is(ask($m, "version\r\n"), '', "mtls: refused without a client certificate");
    $m = tls_sock($mtls_port, cert => 'client');
    is(ask($m, "version\r\n"), "VERSION 1.6.45\r\n", "mtls: a CA-signed client certificate");
    $m = tls_sock($mtls_port, cert => 'stranger');
    is(ask($m, "version\r\n"), '', "mtls: a certificate from another CA is refused");
}

# ---- refresh_certs and SIGHUP ----
{
    my $s = tls_sock($tls_port);
    is(ask($s, "refresh_certs\r\n"), "OK\r\n", "refresh_certs");
    system("cp $tmp/server.crt $tmp/server.crt.good && cp $tmp/server.key $tmp/server.key.good");
    system("cp $tmp/server2.key $tmp/server.key");
    like(ask($s, "refresh_certs\r\n"),
        qr/^Error loading the key: \Q$tmp\E\/server\.key : .*key values mismatch\r\n\z/,
        "a key that does not match is refused");
    is(ask($s, "version\r\n"), "VERSION 1.6.45\r\n", "the connection goes on");
    ok(tls_sock($tls_port), "new handshakes still work with the old certificate");
    system("cp $tmp/server2.crt $tmp/server.crt");
    is(ask($s, "refresh_certs\r\n"), "OK\r\n", "a new certificate and key load");
    my $n = tls_sock($tls_port);
    my $cn = $n ? $n->peer_certificate('subject') : '';
    like($cn, qr/CN\s*=\s*server2/, "new handshakes see the new certificate");
    system("cp $tmp/server.crt.good $tmp/server.crt && cp $tmp/server.key.good $tmp/server.key");
    kill('HUP', $server->pid);
    my $back = 0;
    for (1 .. 30) {
        my $t = tls_sock($tls_port);
        if ($t && $t->peer_certificate('subject') =~ /CN\s*=\s*server(?!2)/) {
            $back = 1;
            last;
        }
        MemcachedTest::sleep(0.1);
    }
    ok($back, "SIGHUP reloads the certificates");
    my $p = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$plain_port");
    is(ask($p, "refresh_certs\r\n"), "OK\r\n", "refresh_certs over a plain listener");
}

# ---- verify modes ----
for my $case ([1, 1, 1, 1], [2, 0, 1, 1], [3, 0, 1, 1]) {
    my ($mode, $none_ok, $client_ok, $stranger_refused) = @$case;
    my $port = free_port();
    my $srv = new_memcached("$certs,ssl_verify_mode=$mode -U 0 -l 127.0.0.1", $port);
    my $none = ask(tls_sock($port), "version\r\n");
    is($none eq "VERSION 1.6.45\r\n" ? 1 : 0, $none_ok, "verify mode $mode: no certificate");
    is(ask(tls_sock($port, cert => 'client'), "version\r\n"), "VERSION 1.6.45\r\n",
        "verify mode $mode: a good certificate");
    is(ask(tls_sock($port, cert => 'stranger'), "version\r\n"), '',
        "verify mode $mode: another CA's certificate is refused");
    if ($have_expired) {
        is(ask(tls_sock($port, cert => 'expired'), "version\r\n"), '',
            "verify mode $mode: an expired certificate is refused");
    }
}

# ---- a stalled handshake is dropped by the idle timeout; renegotiation is refused ----
{
    my $port = free_port();
    my $srv = new_memcached("$certs,idle_timeout=1 -U 0 -l 127.0.0.1", $port);
    my $stall = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    print $stall "\x16\x03\x01";
    my ($got, $eof) = mem_drain($stall, 5);
    ok($eof, "a client stalled mid-handshake is closed by idle_timeout");
    my $st = mem_stats(tls_sock($port));
    ok($st->{idle_kicks} >= 1, "and counted as an idle kick");

    # s_client sends a renegotiation request for a line "R" (not with -quiet).
    my $out = `(printf 'R\n'; sleep 1; printf 'version\r\n'; sleep 1) | timeout 5 openssl s_client -connect 127.0.0.1:$port -tls1_2 2>&1`;
    like($out, qr/no renegotiation/, "a TLS 1.2 renegotiation request is refused");
    unlike($out, qr/VERSION 1/, "and that client is served no more");
    is(ask(tls_sock($port), "version\r\n"), "VERSION 1.6.45\r\n", "other clients go on");
}

# ---- -o ssl_kernel_tls: sessions on OpenSSL's own socket BIO (which kernel TLS needs, where
# the kernel has it; without it OpenSSL does the records itself) ----
{
    my $port = free_port();
    my $srv = new_memcached("$certs,ssl_kernel_tls -U 0 -l 127.0.0.1", $port);
    my $s = tls_sock($port);
    is(ask($s, "set kt 0 0 2\r\nhi\r\n"), "STORED\r\n", "ssl_kernel_tls: set");
    is(ask($s, "get kt\r\n", 3), "VALUE kt 0 2\r\nhi\r\nEND\r\n", "ssl_kernel_tls: get");
    is(mem_stats($s, 'settings')->{ssl_kernel_tls}, 'yes', "stats settings: ssl_kernel_tls");
}

# ---- start-up errors ----
{
    my $exe = get_memcached_exe();
    my @root = $< == 0 ? ('-u', 'root') : ();
    my $port = free_port();
    my $err = `$exe @root -Z -p $port -U 0 -o ssl_chain_cert=$tmp/server.crt,ssl_key=$tmp/none.key 2>&1`;
    like($err, qr/Error loading the key: \Q$tmp\E\/none\.key : .*No such file or directory\r\n\z/s,
        "a missing key stops the server");
    is($? >> 8, 64, "with status 64");
    $err = `$exe @root -Z -p $port -U 0 $certs,ssl_ciphers=NOPE 2>&1`;
    is($err, "Error setting the provided cipher(s): NOPE\n", "bad ciphers stop the server");
    $err = `$exe @root -l notls:127.0.0.1 -p $port -U 0 2>&1`;
    is($err, "'notls' option is valid only when SSL is enabled\n"
        . "failed to listen on one of interface(s) notls:127.0.0.1: Success\n", "notls needs -Z");
}

done_testing();
