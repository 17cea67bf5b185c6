using System.Buffers;
using System.Collections.Immutable;
using System.IO.Pipelines;
using System.Threading.Channels;
using EdgeEru.Ssh.Server;
using EdgeEru.Ssh.Transport;
using EdgeEru.Ssh.Wire;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Ssh.Connection;

/// <summary>
/// A "session" channel (RFC 4254 §6): collects pty-req and env, starts the handler on shell/exec/subsystem, carries data
/// both ways under the two windows, and ends with exit-status (or exit-signal), EOF and CLOSE.
/// </summary>
internal sealed class SessionChannel : IDisposable
{
    private readonly SshTransport _transport;
    private readonly SshServerHandler _handler;
    private readonly SshConnectionInfo _connection;
    private readonly SshServerOptions _options;
    private readonly ILogger _log;
    private readonly Pipe _stdin = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
    private readonly Channel<TerminalSize> _resizes = Channel.CreateUnbounded<TerminalSize>();
    private readonly Channel<string> _signals = Channel.CreateUnbounded<string>();
    private readonly CancellationTokenSource _cts;
    private readonly object _gate = new();
    // Completed (and replaced) whenever the client's window grows or the channel closes: wakes every waiting writer
    // (stdout and stderr share the window).
    private TaskCompletionSource _windowGrew = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ImmutableDictionary<string, string> _env = ImmutableDictionary<string, string>.Empty;
    private PtyRequest? _pty;
    private long _remoteWindow;
    private uint _localWindow;
    private bool _started;
    private bool _closeSent;
    private bool _closeReceived;
    private bool _eofReceived;

    public SessionChannel(uint localId, uint remoteId, uint remoteWindow, uint remoteMaxPacket, SshTransport transport,
        SshServerHandler handler, SshConnectionInfo connection, SshServerOptions options, ILogger log, CancellationToken connectionToken)
    {
        LocalId = localId;
        RemoteId = remoteId;
        _remoteWindow = remoteWindow;
        RemoteMaxPacket = Math.Max(1, Math.Min(remoteMaxPacket, 32 * 1024u));
        _localWindow = options.ChannelWindow;
        _transport = transport;
        _handler = handler;
        _connection = connection;
        _options = options;
        _log = log;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(connectionToken);
    }

    public void Dispose()
    {
        _cts.Dispose();
    }

    public uint LocalId { get; }
    public uint RemoteId { get; }
    public uint RemoteMaxPacket { get; }
    public Task Completion { get; private set; } = Task.CompletedTask;
    public bool Closed { get { lock (_gate) return _closeSent && _closeReceived; } }

    // ---- from the client (called by the connection's single reader) ----

    public async ValueTask OnDataAsync(ReadOnlyMemory<byte> data, bool extended)
    {
        lock (_gate)
        {
            if (data.Length > _localWindow)
                throw new SshProtocolException($"channel {LocalId}: {data.Length} bytes beyond the window of {_localWindow}");
            if (data.Length > _options.ChannelMaxPacket)
                throw new SshProtocolException(
                    $"channel {LocalId}: data packet of {data.Length} bytes beyond the maximum of {_options.ChannelMaxPacket}");
            _localWindow -= (uint)data.Length;
            if (_eofReceived || extended) return; // no stdin after EOF; a client's extended data has no meaning for a session
        }
        await _stdin.Writer.WriteAsync(data);
    }

    public void OnEof()
    {
        lock (_gate) _eofReceived = true;
        _stdin.Writer.Complete();
    }

    public void OnWindowAdjust(uint bytes)
    {
        TaskCompletionSource grew;
        lock (_gate)
        {
            _remoteWindow = Math.Min(uint.MaxValue, _remoteWindow + bytes);
            grew = _windowGrew;
            _windowGrew = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        grew.TrySetResult();
    }

    public async ValueTask OnCloseAsync()
    {
        bool reply;
        lock (_gate)
        {
            _closeReceived = true;
            reply = !_closeSent;
            _closeSent = true;
        }
        _cts.Cancel();
        lock (_gate) _windowGrew.TrySetResult();
        _stdin.Writer.Complete();
        if (reply) await _transport.SendAsync(new SshWriter(16).Byte(MessageNumber.ChannelClose).UInt32(RemoteId));
    }

    /// <summary>A channel request; returns whether it succeeded (the caller replies when asked to).</summary>
    public bool OnRequest(string type, ref SshReader r)
    {
        switch (type)
        {
            case "pty-req" when !_started:
            {
                var term = r.Utf8("TERM");
                var size = new TerminalSize(r.UInt32("columns"), r.UInt32("rows"), r.UInt32("width"), r.UInt32("height"));
                var modes = r.String("terminal modes").ToArray();
                if (term.Length > 64 || size.Columns > 10000 || size.Rows > 10000) return false;
                _pty = new PtyRequest(term, size, modes);
                return true;
            }
            case "env" when !_started:
            {
                var name = r.Utf8("variable name");
                var value = r.Utf8("variable value");
                if (_env.Count >= 64 || name.Length is 0 or > 256 || value.Length > 8192 || name.Contains('=')) return false;
                _env = _env.SetItem(name, value);
                return true;
            }
            case "shell" when !_started:
                Start(null, null);
                return true;
            case "exec" when !_started:
                Start(r.Utf8("command"), null);
                return true;
            case "subsystem" when !_started:
            {
                var name = r.Utf8("subsystem name");
                if (!_handler.SupportsSubsystem(_connection, name)) return false;
                Start(null, name);
                return true;
            }
            case "window-change":
            {
                var size = new TerminalSize(r.UInt32("columns"), r.UInt32("rows"), r.UInt32("width"), r.UInt32("height"));
                if (_pty is null || size.Columns > 10000 || size.Rows > 10000) return false;
                _resizes.Writer.TryWrite(size);
                return true;
            }
            case "signal":
                return _started && _signals.Writer.TryWrite(r.Utf8("signal name"));
            default:
                return false; // x11-req, auth-agent-req@openssh.com, unknown: refused
        }
    }

    private void Start(string? command, string? subsystem)
    {
        _started = true;
        _pending = new SshSession(_connection, _pty, _env, command, subsystem, new InputStream(this), new OutputStream(this, null),
            new OutputStream(this, 1), _resizes.Reader, _signals.Reader);
    }

    private SshSession? _pending;

    /// <summary>
    /// Runs the handler for a session that was asked for; called after the request's success reply went out, so it comes first.
    /// </summary>
    public void Launch()
    {
        if (_pending is not { } session) return;
        _pending = null;
        Completion = Task.Run(() => RunAsync(session));
    }

    private async Task RunAsync(SshSession session)
    {
        SessionExit exit;
        try
        {
            exit = await _handler.RunSessionAsync(session, _cts.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException && _cts.IsCancellationRequested)
        {
            return; // the client or the connection went away
        }
        catch (Exception e)
        {
            _log.LogError(e, "session handler failed on channel {Channel}", LocalId);
            exit = SessionExit.Exited(255);
        }
        finally
        {
            _resizes.Writer.TryComplete();
            _signals.Writer.TryComplete();
        }
        try
        {
            lock (_gate)
                if (_closeSent) return;
            await _transport.SendAsync(new SshWriter(64).Byte(MessageNumber.ChannelRequest).UInt32(RemoteId)
                .String("exit-status").Boolean(false).UInt32((uint)exit.Code));
            await _transport.SendAsync(new SshWriter(16).Byte(MessageNumber.ChannelEof).UInt32(RemoteId));
            lock (_gate)
            {
                if (_closeSent) return;
                _closeSent = true;
            }
            await _transport.SendAsync(new SshWriter(16).Byte(MessageNumber.ChannelClose).UInt32(RemoteId));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
            // connection lost while ending
        }
    }

    // ---- to the client ----

    private async ValueTask SendAsync(ReadOnlyMemory<byte> data, uint? dataType, SshWriter scratch, CancellationToken ct)
    {
        while (!data.IsEmpty)
        {
            int n;
            while (true)
            {
                Task grew;
                lock (_gate)
                {
                    if (_closeSent) throw new IOException("the channel is closed");
                    n = (int)Math.Min(Math.Min(_remoteWindow, RemoteMaxPacket), data.Length);
                    if (n > 0)
                    {
                        _remoteWindow -= n;
                        break;
                    }
                    grew = _windowGrew.Task;
                }
                await grew.WaitAsync(ct);
            }
            scratch.Clear();
            scratch.Byte(dataType is null ? MessageNumber.ChannelData : MessageNumber.ChannelExtendedData).UInt32(RemoteId);
            if (dataType is { } t) scratch.UInt32(t);
            scratch.String(data.Span[..n]);
            await _transport.SendAsync(scratch, ct);
            data = data[n..];
        }
    }

    private async ValueTask ConsumedAsync(int bytes)
    {
        uint grant = 0;
        lock (_gate)
        {
            _consumed += bytes;
            // Grant more window once half of it was read, as OpenSSH does, so the client never stalls for long.
            if (_consumed >= _options.ChannelWindow / 2 && !_closeSent)
            {
                grant = (uint)_consumed;
                _localWindow += grant;
                _consumed = 0;
            }
        }
        if (grant > 0) await _transport.SendAsync(new SshWriter(16).Byte(MessageNumber.ChannelWindowAdjust).UInt32(RemoteId).UInt32(grant));
    }

    private long _consumed;

    private sealed class InputStream(SessionChannel channel) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) =>
            ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var reader = channel._stdin.Reader;
            var result = await reader.ReadAsync(ct);
            var seq = result.Buffer;
            var n = (int)Math.Min(seq.Length, buffer.Length);
            seq.Slice(0, n).CopyTo(buffer.Span);
            reader.AdvanceTo(seq.GetPosition(n));
            if (n > 0) await channel.ConsumedAsync(n);
            return n; // 0 only when completed and drained: EOF
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
    }

    private sealed class OutputStream(SessionChannel channel, uint? dataType) : Stream
    {
        private readonly SshWriter _scratch = new(36 * 1024);
        private readonly SemaphoreSlim _one = new(1, 1);

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override Task FlushAsync(CancellationToken ct) => Task.CompletedTask;
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) =>
            WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            await _one.WaitAsync(ct);
            try
            {
                await channel.SendAsync(buffer, dataType, _scratch, ct);
            }
            finally
            {
                _one.Release();
            }
        }
    }
}
