package MemcachedTest;

# Test harness for the memcached server: starts servers under ./timedrun,
# hands out connected sockets and offers small protocol helpers.
#
# Tests are run from the top of the build tree (prove -It/lib t/); the
# binaries ./memcached-debug and ./timedrun are expected there, and the TLS
# key material under t/.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(getcwd);
use Exporter qw(import);
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);

our @EXPORT = qw(
    new_memcached sleep
    mem_get_is mem_gets mem_gets_is mem_stats mem_move_time
    supports_sasl free_port supports_drop_priv supports_extstore
    wait_ext_flush supports_tls enabled_tls_testing run_help
    supports_unix_socket get_memcached_exe supports_proxy
    mem_request mem_meta_batch mem_drain
);
our @EXPORT_OK = qw(supports_udp is_running run_binary slurp mem_metadump);

use constant MAX_READ_WRITE_SIZE => 16384;
use constant SRV_CRT    => "server_crt.pem";
use constant SRV_KEY    => "server_key.pem";
use constant CLIENT_CRT => "client_crt.pem";
use constant CLIENT_KEY => "client_key.pem";
use constant CA_CRT     => "cacert.pem";

# Everything is resolved against the directory the test was started from.
my $TOP = getcwd();
my $TESTS = "$TOP/t";

my %TLS_FILES = (
    client_crt => "$TESTS/" . CLIENT_CRT,
    client_key => "$TESTS/" . CLIENT_KEY,
    server_crt => "$TESTS/" . SRV_CRT,
    server_key => "$TESTS/" . SRV_KEY,
);

# Seconds a server gets to start accepting connections. Startup failures are
# reported with croak() messages starting "Failed to connect" (tests match it).
use constant START_TIMEOUT => 20;
# Seconds between two connection attempts while a server starts.
use constant START_POLL => 0.02;

# A server that drops a connection must make a test fail, not kill it:
# writes to a closed socket return an error instead of raising SIGPIPE.
$SIG{PIPE} = 'IGNORE' unless $SIG{PIPE};

my $OWNER_PID = $$;        # only this process cleans up at exit
my @SOCKET_FILES;          # unix socket paths we invented
my %SERVER_PIDS;           # pid => 1 for every server we launched
my %REAPED;                # pid => wait status, once collected
my %HANDED_OUT;            # "proto:port" already returned by free_port
my %HELP_TEXT;             # binary path => output of "-h"
my $TLS_READY = 0;

# ---------------------------------------------------------------------------
# small utilities

# Fractional sleep; exported so that tests may sleep for less than a second.
sub sleep {
    my ($seconds) = @_;
    select(undef, undef, undef, $seconds);
    return;
}

sub get_memcached_exe {
    my $exe = "$TOP/memcached-debug";
    croak("no server binary at $exe (build it with 'make' first)\n")
        unless -e $exe;
    croak("server binary $exe is not executable\n") unless -x $exe;
    return $exe;
}

# Output of "<binary> -h", computed once per binary.
sub _help_text {
    my ($exe) = @_;
    $exe //= get_memcached_exe();
    unless (defined $HELP_TEXT{$exe}) {
        my $text = '';
        if (open(my $fh, '-|', $exe, '-h')) {
            local $/;
            $text = <$fh> // '';
            close($fh);
        }
        $HELP_TEXT{$exe} = $text;
    }
    return $HELP_TEXT{$exe};
}

sub _help_mentions {
    my ($re) = @_;
    return _help_text() =~ $re ? 1 : 0;
}

sub supports_udp         { return _help_text() =~ /^memcached 1\.1\./ ? 0 : 1 }
sub supports_sasl        { return _help_mentions(qr/sasl/i) }
sub supports_extstore    { return _help_mentions(qr/ext_path/i) }
sub supports_proxy       { return _help_mentions(qr/proxy_config/i) }
sub supports_tls         { return _help_mentions(qr/enable-ssl/i) }
sub supports_unix_socket { return _help_mentions(qr/unix-socket/i) }
sub supports_drop_priv   { return _help_mentions(qr/no_drop_privileges/i) }

# True when the suite should talk TLS: the binary has it and SSL_TEST is set.
sub enabled_tls_testing {
    return 1 if $TLS_READY;
    return 0 unless $ENV{SSL_TEST} && supports_tls();
    eval { require IO::Socket::SSL; 1 }
        or croak("SSL_TEST is set but IO::Socket::SSL cannot be loaded: $@");
    $TLS_READY = 1;
    return 1;
}

# Exit code of "<binary> -h" as system() reports it (0 on success).
# Alias kept for tests that call it by its full name.
sub print_help { return _help_text() }

sub run_help {
    my $exe = get_memcached_exe();
    return system($exe, '-h');
}

# A random port in 30000..49999 that nothing is bound to right now.
sub free_port {
    my ($proto) = @_;
    $proto ||= 'tcp';
    for (1 .. 1000) {
        my $port = 30000 + int(rand(20000));
        next if $HANDED_OUT{"$proto:$port"};
        # The wildcard address conflicts with a listener on any address.
        # SO_REUSEADDR only for TCP, to accept ports in TIME_WAIT; for UDP it
        # would let the probe share a port a server already uses.
        my $probe = IO::Socket::INET->new(
            LocalAddr => '0.0.0.0',
            LocalPort => $port,
            Proto     => $proto,
            ($proto eq 'tcp' ? (ReuseAddr => 1) : ()),
        ) or next;
        close($probe);
        $HANDED_OUT{"$proto:$port"} = 1;
        return $port;
    }
    croak("could not find a free $proto port");
}

# ---------------------------------------------------------------------------
# child process bookkeeping

# 1 while the process is alive (or not known to be gone), 0 once it is gone.
sub is_running {
    my ($pid) = @_;
    return unless defined $pid;
    return 0 if exists $REAPED{$pid};
    my $got = waitpid($pid, WNOHANG);
    return 1 if $got == 0;
    $REAPED{$pid} = $got == $pid ? $? : undef;
    return 0;
}

# Wait status of a collected child, undef while running or unknown.
sub _exit_status {
    my ($pid) = @_;
    return $REAPED{$pid};
}

my %INT_SENT;               # pid => 1 once asked to stop at teardown

sub _signal_server {
    my ($pid, $signal) = @_;
    return 0 unless defined $pid;
    # A collected pid may already belong to some other process.
    return 0 if exists $REAPED{$pid};
    return kill($signal, $pid);
}

# Ask a server to stop because its handle or the test goes away; once only,
# as a second request would make timedrun escalate.
sub _teardown_server {
    my ($pid) = @_;
    return if !defined $pid || $INT_SENT{$pid}++;
    _signal_server($pid, 'INT');
    return;
}

# ---------------------------------------------------------------------------
# connections

sub _tls_client {
    my (%extra) = @_;
    return IO::Socket::SSL->new(
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
        %extra,
    );
}

sub _tcp_client {
    my ($host, $port) = @_;
    if (enabled_tls_testing()) {
        return _tls_client(
            PeerAddr      => "$host:$port",
            SSL_cert_file => $TLS_FILES{client_crt},
            SSL_key_file  => $TLS_FILES{client_key},
        );
    }
    return IO::Socket::INET->new(PeerAddr => "$host:$port");
}

sub _wait_for {
    my (%w) = @_;    # connect => sub, pid, daemon, what
    my $deadline = time() + $w{timeout};
    while (1) {
        my $conn = $w{connect}->();
        return $conn if $conn;
        if (defined $w{pid} && !is_running($w{pid})) {
            my $status = _exit_status($w{pid});
            # A daemonizing server's launcher exits 0 once the daemon is off.
            unless ($w{daemon} && defined $status && $status == 0) {
                my $why = defined $status
                    ? sprintf("exit status %d", $status >> 8)
                    : "gone";
                croak("Failed to connect to $w{what}: memcached not running ($why)");
            }
        }
        croak("Failed to connect to memcached at $w{what} within $w{timeout}s")
            if time() > $deadline;
        MemcachedTest::sleep(START_POLL);
    }
}

# ---------------------------------------------------------------------------
# starting servers

sub _external_daemon {
    my ($spec) = @_;
    my ($host, $port) = $spec =~ /^([^:]+):(\d+)$/
        or croak("T_MEMD_USE_DAEMON must look like host:port");
    my $conn = _tcp_client($host, $port)
        or croak("Failed to connect to the memcached given in T_MEMD_USE_DAEMON");
    return Memcached::Handle->new(conn => $conn, host => $host, port => $port);
}

# new_memcached($args, $port[, $opts])
#   $args  extra command line options for the server
#   $port  TCP port to use (default: a free one) when listening on TCP
#   $opts  optional: a host name to connect to, or a hash with any of
#          host    address to connect to (default 127.0.0.1)
#          exe     server binary (default ./memcached-debug)
#          stderr  file that receives the server's stderr (appended)
# The server listens on a unix socket unless the arguments ask for TCP (-l),
# TLS testing is on, or the binary lacks unix socket support.
sub new_memcached {
    my ($args, $port, $opts) = @_;
    $args = '' unless defined $args;
    $opts = { host => $opts } if defined $opts && ref($opts) ne 'HASH';
    $opts ||= {};

    return _external_daemon($ENV{T_MEMD_USE_DAEMON}) if $ENV{T_MEMD_USE_DAEMON};

    my $host = $opts->{host} || '127.0.0.1';
    my $external = $ENV{T_MEMD_EXTERNAL} || 0;
    my $tls = enabled_tls_testing();
    my $exe = $opts->{exe} || get_memcached_exe();

    $args .= " -u root" if $< == 0;
    # Only debug builds know relaxed_privileges (a release binary can be given as exe).
    # T_MEMD_DROP_PRIVILEGES=1 runs every server under the strict seccomp filters instead.
    if ($ENV{T_MEMD_DROP_PRIVILEGES}) {
        $args .= " -o drop_privileges";
    } elsif (!$opts->{exe} || _help_text($exe) =~ /relaxed_privileges/) {
        $args .= " -o relaxed_privileges";
    }

    my $given_socket = $args =~ /-s (\S+)/ ? $1 : undef;
    my $want_tcp = $args =~ /-l (\S+)/
        || (($tls || !supports_unix_socket()) && !defined $given_socket);

    my ($udpport, $socket_file);
    if ($want_tcp) {
        $port ||= free_port();
        $udpport = free_port('udp');
        ($port, $udpport) = (31000, 31000) if $external;
        $args .= " -p $port";
        if ($args =~ /-U (\S+)/) {
            my $given = $1;
            $udpport = $given if $given =~ /^\d+$/;
        } elsif (supports_udp()) {
            $args .= " -U $udpport";
        }
        if ($tls) {
            $args .= " -Z";
            $args .= " -o ssl_chain_cert=$TLS_FILES{server_crt}"
                unless $args =~ /-o ssl_chain_cert=\S+/;
            $args .= " -o ssl_key=$TLS_FILES{server_key}"
                unless $args =~ /-o ssl_key=\S+/;
        }
    } elsif (defined $given_socket) {
        $socket_file = $given_socket;
    } else {
        my $n = scalar @SOCKET_FILES;
        $socket_file = $external
            ? "/tmp/memcachedtest.$external.$n"
            : "/tmp/memcachetest.$$.$n";
        # A leftover from an earlier run with the same pid must not answer.
        unlink($socket_file) if -S $socket_file;
        push(@SOCKET_FILES, $socket_file);
        $args .= " -s $socket_file";
    }

    my $timeout = START_TIMEOUT;
    my $pid;
    if ($external) {
        print STDERR "External daemon requested. Start arguments:\n$exe $args\n";
        $timeout = 100_000;
    } else {
        my @valgrind;
        if ($ENV{VALGRIND_TEST}) {
            my $vg_args = $ENV{VALGRIND_ARGS}
                || "--quiet --error-exitcode=1 --exit-on-first-error=yes";
            push(@valgrind, "valgrind", $vg_args);
            push(@valgrind, $ENV{VALGRIND_EXTRA_ARGS})
                if defined $ENV{VALGRIND_EXTRA_ARGS};
        }
        my $command = join(' ', "$TOP/timedrun", 600, @valgrind, $exe, $args);
        $pid = fork();
        croak("fork failed: $!") unless defined $pid;
        if ($pid == 0) {
            if (defined $opts->{stderr}) {
                open(STDERR, '>>', $opts->{stderr}) or POSIX::_exit(127);
            }
            # The server's stdout goes to stderr: a server that outlives its
            # test must not hold the TAP pipe open (prove would wait for it),
            # and nothing it prints belongs in the TAP stream.
            open(STDOUT, '>&', \*STDERR) or POSIX::_exit(127);
            # Ignored signals survive exec: the server starts with defaults.
            $SIG{PIPE} = 'DEFAULT';
            exec($command) or POSIX::_exit(127);
        }
        $SERVER_PIDS{$pid} = 1;
    }

    my $daemon = $args =~ /(?:^|\s)(?:-d|--daemon)(?:\s|$)/ ? 1 : 0;
    if (defined $socket_file) {
        my $conn = _wait_for(
            connect => sub { IO::Socket::UNIX->new(Peer => $socket_file) },
            pid     => $pid,
            daemon  => $daemon,
            timeout => $timeout,
            what    => "unix socket $socket_file",
        );
        return Memcached::Handle->new(
            pid          => $pid,
            conn         => $conn,
            domainsocket => $socket_file,
            host         => $host,
            port         => $port,
        );
    }

    my $conn = _wait_for(
        connect => sub { _tcp_client($host, $port) },
        pid     => $pid,
        daemon  => $daemon,
        timeout => $timeout,
        what    => "$host:$port",
    );
    return Memcached::Handle->new(
        pid     => $pid,
        conn    => $conn,
        udpport => $udpport,
        host    => $host,
        port    => $port,
    );
}

# ---------------------------------------------------------------------------
# protocol helpers

# Split the first argument of the get helpers: a socket or { sock, flags }.
sub _sock_and_opts {
    my ($arg) = @_;
    return ($arg->{sock}, $arg) if ref($arg) eq 'HASH';
    return ($arg, {});
}

# Send "stats[ TYPE]" and collect the STAT/ITEM lines into a hash.
sub mem_stats {
    my ($sock, $type) = @_;
    my $command = $type ? "stats $type" : "stats";
    print $sock "$command\r\n";
    my %stats;
    while (defined(my $line = <$sock>)) {
        last if $line =~ /^(?:\.|END)/;
        last if $line =~ /^(?:ERROR|CLIENT_ERROR|SERVER_ERROR)/;
        if ($line =~ /^(?:STAT|ITEM) (\S+)\s+([^\r\n]*)/) {
            $stats{$1} = $2;
        }
    }
    return \%stats;
}

# Everything a socket sends until it has been quiet for $wait seconds (default 0.5), and
# whether the peer closed: ($bytes, $eof).
sub mem_drain {
    my ($sock, $wait) = @_;
    my $sel = IO::Select->new($sock);
    my ($got, $eof) = ('', 0);
    while ($sel->can_read($wait // 0.5)) {
        my $n = sysread($sock, my $buf, 65536);
        if (!$n) {
            $eof = 1;
            last;
        }
        $got .= $buf;
    }
    return ($got, $eof);
}

# Runs the server binary with @args (as root: -u root first), stdin from /dev/null; one
# that does start is killed after 5 seconds. Returns { rc, out, err, timed_out }.
my $run_dir;
my $runs = 0;
sub run_binary {
    my (@args) = @_;
    my $exe = get_memcached_exe();
    my @as_root = $< == 0 ? ('-u', 'root') : ();
    $run_dir //= tempdir(CLEANUP => 1);
    $runs++;
    my ($out_file, $err_file) = ("$run_dir/out.$runs", "$run_dir/err.$runs");
    my $pid = fork();
    croak("fork: $!") unless defined $pid;
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', $out_file);
        open(STDERR, '>', $err_file);
        { no warnings 'exec'; exec { $exe } $exe, @as_root, @args; }
        POSIX::_exit(127);
    }
    my $deadline = time() + 5;
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
    my %r = (rc => $? >> 8, signal => $? & 127, timed_out => $timed_out);
    for my $k (qw(out err)) {
        open(my $fh, '<', $k eq 'out' ? $out_file : $err_file) or croak("$k: $!");
        local $/;
        $r{$k} = <$fh> // '';
    }
    return \%r;
}

# A whole file's text ('' if it cannot be read).
sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return '';
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

# "lru_crawler metadump all": { key => "exp=.. la=.. cas=.. ..." }, retrying
# while the crawler is BUSY with a crawl of the LRU maintainer's.
sub mem_metadump {
    my ($sock) = @_;
    my %by_key;
    for my $try (1 .. 100) {
        print $sock "lru_crawler metadump all\r\n";
        my $line = <$sock>;
        if (defined $line && $line =~ /^BUSY/) {
            MemcachedTest::sleep(0.1);
            next;
        }
        while (defined $line) {
            last if $line =~ /^END/;
            $by_key{$1} = $2 if $line =~ /^key=(\S+) (.*?)\r?\n/;
            $line = <$sock>;
        }
        last;
    }
    return \%by_key;
}

# Shift the server clock by $seconds (debug builds); returns the reply line.
sub mem_move_time {
    my ($sock, $seconds) = @_;
    print $sock "debugtime $seconds\r\n";
    my $reply = <$sock>;
    return $reply;
}

# Shared body of mem_get_is / mem_gets_is. Values must be single-line.
sub _check_retrieval {
    my ($command, $sock_opts, $cas, $key, $val, $msg) = @_;
    my ($sock, $opts) = _sock_and_opts($sock_opts);
    my $flags = $opts->{flags} || 0;
    $msg ||= "$key == " . (defined $val ? "'$val'" : "<undef>");

    local $Test::Builder::Level = $Test::Builder::Level + 2;
    print $sock "$command $key\r\n";
    my $reply = <$sock>;

    my $expected;
    if (defined $val) {
        my $header = "VALUE $key $flags " . length($val);
        $header .= " $cas" if defined $cas;
        $expected = "$header\r\n$val\r\nEND\r\n";
    } else {
        $expected = "END\r\n";
    }
    # Anything but a bare END carries a value line and END after it.
    if (defined $reply && $reply !~ /^END/) {
        for (1 .. 2) {
            my $more = <$sock>;
            $reply .= $more if defined $more;
        }
    }
    return Test::More::is($reply, $expected, $msg);
}

sub mem_get_is {
    my ($sock_opts, $key, $val, $msg) = @_;
    return _check_retrieval('get', $sock_opts, undef, $key, $val, $msg);
}

sub mem_gets_is {
    my ($sock_opts, $cas, $key, $val, $msg) = @_;
    return _check_retrieval('gets', $sock_opts, $cas, $key, $val, $msg);
}

# Returns ($cas, $value) for a stored key, or "NOT_FOUND" when it is missing.
sub mem_gets {
    my ($sock_opts, $key) = @_;
    my ($sock) = _sock_and_opts($sock_opts);
    print $sock "gets $key\r\n";
    my $header = <$sock>;
    return "NOT_FOUND" if !defined $header || $header =~ /^END/;

    my ($len, $cas) = $header =~ /^VALUE .* \d+ (\d+) (\d+)/;
    my $value = '';
    read($sock, $value, $len) if defined $len;
    my $rest = <$sock>;    # the \r\n closing the data block
    $rest = <$sock>;       # END
    return ($cas, $value);
}

# Wait until the item classes from 3 up hold no more than $target items
# (extstore moved the rest to disk).
sub wait_ext_flush {
    my ($sock, $target) = @_;
    $target ||= 0;
    while (1) {
        my $items = mem_stats($sock, "items");
        my $count = 0;
        for my $name (keys %$items) {
            next unless $name =~ /^items:(\d+):number$/;
            $count += $items->{$name} if $1 >= 3;
        }
        last if $count <= $target;
        MemcachedTest::sleep(1);
    }
    return;
}

# ---------------------------------------------------------------------------

END {
    if ($$ == $OWNER_PID) {
        # Handles normally stop their server when they go away; this catches
        # servers whose handle is still alive when the test exits.
        _teardown_server($_) for keys %SERVER_PIDS;
        unlink($_) for @SOCKET_FILES;
    }
}

############################################################################
# Not in upstream's module: sends $bytes followed by "mn\r\n" and returns what the server
# wrote before "MN\r\n" (or, after a 5 s silence, what arrived, prefixed "NO MN: "), so a
# batch of meta commands is checked as one string.
sub mem_meta_batch {
    my ($sock, $bytes) = @_;
    require IO::Select;
    print $sock $bytes . "mn\r\n";
    my $got = '';
    my $sel = IO::Select->new($sock);
    while ($got !~ /(?:^|\n)MN\r\n\z/) {
        last unless $sel->can_read(5);
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $got .= $buf;
    }
    return $got =~ s/MN\r\n\z//r if $got =~ /(?:^|\n)MN\r\n\z/;
    return "NO MN: $got";
}

# A started (or external) server.
# Not in upstream's module: sends raw bytes and returns the next $lines reply lines joined,
# for tests that compare replies byte for byte.
sub mem_request {
    my ($sock, $send, $lines) = @_;
    print $sock $send;
    my $got = '';
    for (1 .. $lines) {
        my $l = <$sock>;
        last unless defined $l;
        $got .= $l;
    }
    return $got;
}

package Memcached::Handle;

use strict;
use warnings;

use IO::Socket::INET;
use IO::Socket::UNIX;

sub new {
    my ($class, %fields) = @_;
    return bless {%fields}, $class;
}

sub host    { return $_[0]{host} }
sub port    { return $_[0]{port} }
sub udpport { return $_[0]{udpport} }
sub pid     { return $_[0]{pid} }

sub _signal {
    my ($self, $signal) = @_;
    unless ($self->{pid}) {
        print STDERR "external server: not sending SIG$signal\n";
        return;
    }
    return MemcachedTest::_signal_server($self->{pid}, $signal);
}

sub stop          { return $_[0]->_signal('TERM') }
sub graceful_stop { return $_[0]->_signal('USR1') }
sub reload        { return $_[0]->_signal('HUP') }

sub DESTROY {
    my ($self) = @_;
    return unless $self->{pid};
    local ($!, $?, $@);
    MemcachedTest::_teardown_server($self->{pid});
    return;
}

sub is_running {
    my ($self) = @_;
    unless ($self->{pid}) {
        print STDERR "external server: cannot tell whether it runs\n";
        return;
    }
    return MemcachedTest::is_running($self->{pid});
}

# Wait up to $timeout seconds (default 10) for the server to exit. Returns
# the wait status of its timedrun launcher (like $?: exit code << 8, or the
# signal number), or undef if it is still running or the status is unknown.
sub wait_exit {
    my ($self, $timeout) = @_;
    return unless $self->{pid};
    my $deadline = time() + (defined $timeout ? $timeout : 10);
    while (MemcachedTest::is_running($self->{pid})) {
        return if time() > $deadline;
        MemcachedTest::sleep(0.02);
    }
    return MemcachedTest::_exit_status($self->{pid});
}

# The connection made at startup while it is usable, else a fresh one.
sub sock {
    my ($self) = @_;
    my $conn = $self->{conn};
    return $conn if $conn && ($self->{domainsocket} || getpeername($conn));
    return $self->new_sock;
}

# A new connection. Under TLS testing, optional arguments are an
# IO::Socket::SSL session cache and an SSL_version string.
sub new_sock {
    my ($self, $session_cache, $ssl_version) = @_;
    if ($self->{domainsocket}) {
        return IO::Socket::UNIX->new(Peer => $self->{domainsocket});
    }
    if (MemcachedTest::enabled_tls_testing()) {
        my %extra = (
            PeerAddr      => "$self->{host}:$self->{port}",
            SSL_cert_file => $TLS_FILES{client_crt},
            SSL_key_file  => $TLS_FILES{client_key},
        );
        $extra{SSL_session_cache} = $session_cache if defined $session_cache;
        $extra{SSL_version} = $ssl_version if defined $ssl_version;
        return MemcachedTest::_tls_client(%extra);
    }
    return IO::Socket::INET->new(PeerAddr => "$self->{host}:$self->{port}");
}

# TLS connection presenting no client certificate, to the given port.
sub new_nocert_tls_sock {
    my ($self, $port, $ssl_version) = @_;
    return unless MemcachedTest::enabled_tls_testing();
    my %extra = (PeerAddr => "$self->{host}:$port");
    $extra{SSL_version} = $ssl_version if defined $ssl_version;
    return MemcachedTest::_tls_client(%extra);
}

sub new_udp_sock {
    my ($self) = @_;
    return IO::Socket::INET->new(
        PeerAddr  => '127.0.0.1',
        PeerPort  => $self->{udpport},
        Proto     => 'udp',
        LocalAddr => '127.0.0.1',
        LocalPort => MemcachedTest::free_port('udp'),
    );
}

############################################################################
# Mock backends for proxy tests: the test plays both the client of the proxy
# and the memcached servers behind it. Every helper reports through
# Test::More.
package Memcached::ProxyTest;

use strict;
use warnings;

use IO::Select;
use IO::Socket qw(AF_INET SOCK_STREAM);

sub new {
    my ($class, %args) = @_;
    die "needs servers argument"
        unless ref($args{servers}) eq 'ARRAY';
    my $self = bless {%args, _srv => [], _be => [], _csel => IO::Select->new},
        $class;
    for my $port (@{ $args{servers} }) {
        my $listener = _listen_on($port);
        Test::More::ok(defined $listener, "mock backend listening on $port");
        push(@{ $self->{_srv} }, $listener);
    }
    return $self;
}

sub _listen_on {
    my ($port) = @_;
    my $listener = IO::Socket->new(
        Domain    => AF_INET,
        Type      => SOCK_STREAM,
        Proto     => 'tcp',
        LocalHost => '127.0.0.1',
        LocalPort => $port,
        ReusePort => 1,
        Listen    => 5,
    ) or die "IO::Socket: $@";
    return $listener;
}

# Accept the proxy's connection on a listener and answer its version probe.
sub _take_connection {
    my ($listener) = @_;
    my $be = $listener->accept();
    Test::More::ok(defined $be, "proxy connected to mock backend");
    $be->autoflush(1) if $be;
    Test::More::like(scalar <$be>, qr/version/, "backend got version probe");
    my $sent = $be->send("VERSION 1.0.0-mock\r\n");
    Test::More::cmp_ok($sent, '>', 0, "backend answered version probe");
    return $be;
}

sub accept_backends {
    my ($self) = @_;
    $self->{_be} = [map { _take_connection($_) } @{ $self->{_srv} }];
    return;
}

sub accept_backend {
    my ($self, $idx) = @_;
    $self->{_be}[$idx] = _take_connection($self->{_srv}[$idx]);
    return;
}

sub close_backend {
    my ($self, $idx) = @_;
    $self->{_be}[$idx]->close;
    return;
}

# True when the proxy has a connection waiting on listener $idx.
sub srv_accept_waiting {
    my ($self, $idx, $wait) = @_;
    my $sel = IO::Select->new($self->{_srv}[$idx]);
    return $sel->can_read($wait || 1);
}

# Set the client socket (a connection to the proxy).
sub set_c {
    my ($self, $c) = @_;
    $self->{_csel}->remove($self->{_c}) if exists $self->{_c};
    $self->{_c} = $c;
    $self->{_csel}->add($c);
    return;
}

sub check_c {
    my ($self) = @_;
    my $c = $self->{_c};
    print $c "version\r\n";
    Test::More::like(scalar <$c>, qr/VERSION /, "client connection alive");
    return;
}

sub wait_c {
    my ($self, $wait) = @_;
    return $self->{_csel}->can_read($wait);
}

# Send a command from the client; remembered for be_recv_c.
sub c_send {
    my ($self, $cmd) = @_;
    my $c = $self->{_c};
    print $c $cmd;
    $self->{_cmd} = $cmd;
    return;
}

# Backends named by an index, a list of indexes, or 'all'.
sub _be_list {
    my ($self, $which) = @_;
    my $all = $self->{_be};
    if (ref($which) eq 'ARRAY') {
        return [map { $all->[$_] } @$which];
    }
    if (!ref($which)) {
        return [@$all] if $which eq 'all';
        return [$all->[$which]] if $which =~ /^\d+$/ && exists $all->[$which];
    }
    die "unknown argument";
}

# Each named backend receives, line by line, what the client last sent.
sub be_recv_c {
    my ($self, $which, $detail) = @_;
    $detail ||= 'backend received client command';
    die "issue a command with c_send before calling be_recv_c"
        unless exists $self->{_cmd};
    my @lines = split(/(?<=\r\n)/, $self->{_cmd});
    for my $be (@{ $self->_be_list($which) }) {
        Test::More::is(scalar <$be>, $_, $detail) for @lines;
    }
    return;
}

sub be_recv_like {
    my ($self, $which, $re, $detail) = @_;
    die "must provide a command to check" unless $re;
    $detail ||= 'backend received expected data';
    for my $be (@{ $self->_be_list($which) }) {
        Test::More::like(scalar <$be>, $re, $detail);
    }
    return;
}

sub be_recv {
    my ($self, $which, $line, $detail) = @_;
    die "must provide a command to check" unless $line;
    $detail ||= 'backend received expected data';
    for my $be (@{ $self->_be_list($which) }) {
        Test::More::is(scalar <$be>, $line, $detail);
    }
    return;
}

# Backends answer the proxy; remembered for c_recv_be.
sub be_send {
    my ($self, $which, $data) = @_;
    die "must provide data to return" unless $data;
    $self->{_becmd} = $data;
    print {$_} $data for @{ $self->_be_list($which) };
    return;
}

sub c_recv_be {
    my ($self, $detail) = @_;
    $detail ||= 'client received backend response';
    my $c = $self->{_c};
    Test::More::is(scalar <$c>, $self->{_becmd}, $detail);
    return;
}

sub c_recv {
    my ($self, $line, $detail) = @_;
    $detail ||= 'client received expected response';
    my $c = $self->{_c};
    Test::More::is(scalar <$c>, $line, $detail);
    return;
}

# Forget remembered commands and make sure the client has nothing pending.
sub clear {
    my ($self) = @_;
    delete @{$self}{qw(_cmd _becmd)};
    $self->check_c();
    return;
}

1;
