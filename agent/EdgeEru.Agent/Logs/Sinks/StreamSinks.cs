using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Agent.Logs.Sinks;

/// <summary>JSON lines to the agent's standard output.</summary>
public sealed class StdoutSink(string name, LogSinkOptions options, ILogger log) : LogSink(name, options, log)
{
    private Stream? _out;

    protected override Task ConnectAsync(CancellationToken ct)
    {
        _out ??= new BufferedStream(Console.OpenStandardOutput(), 64 * 1024);
        return Task.CompletedTask;
    }

    protected override async ValueTask WriteAsync(LogRecord r, CancellationToken ct)
    {
        await _out!.WriteAsync(r.Json, ct);
        _out.WriteByte((byte)'\n');
    }

    protected override Task FlushAsync(CancellationToken ct) => _out!.FlushAsync(ct);
    protected override ValueTask CloseAsync() => ValueTask.CompletedTask;
}

/// <summary>JSON lines to a file, rotated past MaxBytes: path → path.1 → ... → path.{Keep} (the oldest goes).</summary>
public sealed class FileSink(string name, LogSinkOptions options, ILogger log) : LogSink(name, options, log)
{
    private readonly string _path = Path.GetFullPath(options.Path!);
    private FileStream? _file;

    protected override Task ConnectAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        _file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);
        return Task.CompletedTask;
    }

    protected override async ValueTask WriteAsync(LogRecord r, CancellationToken ct)
    {
        if (_file!.Length > 0 && _file.Length + r.Json.Length + 1 > Options.MaxBytes) await RotateAsync(ct);
        await _file!.WriteAsync(r.Json, ct);
        _file.WriteByte((byte)'\n');
    }

    private async Task RotateAsync(CancellationToken ct)
    {
        await _file!.FlushAsync(ct);
        await _file.DisposeAsync();
        File.Delete($"{_path}.{Options.Keep}");
        for (var i = Options.Keep - 1; i >= 1; i--)
            if (File.Exists($"{_path}.{i}")) File.Move($"{_path}.{i}", $"{_path}.{i + 1}");
        File.Move(_path, _path + ".1");
        _file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);
    }

    protected override Task FlushAsync(CancellationToken ct) => _file!.FlushAsync(ct);

    protected override async ValueTask CloseAsync()
    {
        if (_file is not null) await _file.DisposeAsync();
        _file = null;
    }
}

/// <summary>A TCP stream: JSON lines, or RFC 5424 syslog framed by octet counting.</summary>
public sealed class TcpSink(string name, LogSinkOptions options, bool syslog, ILogger log) : LogSink(name, options, log)
{
    private readonly EndPoint _endPoint = LogSinkOptions.ParseAddress(options.Address)!;
    private Socket? _socket;
    private Stream? _stream;

    protected override async Task ConnectAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        _socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await _socket.ConnectAsync(_endPoint, timeout.Token);
        _stream = new BufferedStream(new NetworkStream(_socket, ownsSocket: false), 64 * 1024);
    }

    protected override async ValueTask WriteAsync(LogRecord r, CancellationToken ct)
    {
        if (syslog)
        {
            await _stream!.WriteAsync(Syslog.Frame(Syslog.Format(r, Options.Facility)), ct);
            return;
        }
        await _stream!.WriteAsync(r.Json, ct);
        _stream.WriteByte((byte)'\n');
    }

    protected override Task FlushAsync(CancellationToken ct) => _stream!.FlushAsync(ct);

    protected override ValueTask CloseAsync()
    {
        _socket?.Dispose(); // not the buffered stream: flushing into a dead peer could block
        _socket = null;
        _stream = null;
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// One datagram per line: JSON, or RFC 5424 syslog. A listener that is not there costs the lines sent meanwhile, nothing more.
/// </summary>
public sealed class UdpSink(string name, LogSinkOptions options, bool syslog, ILogger log) : LogSink(name, options, log)
{
    private readonly EndPoint _endPoint = LogSinkOptions.ParseAddress(options.Address)!;
    private Socket? _socket;

    protected override async Task ConnectAsync(CancellationToken ct)
    {
        _socket = new Socket(SocketType.Dgram, ProtocolType.Udp);
        await _socket.ConnectAsync(_endPoint, ct);
    }

    protected override async ValueTask WriteAsync(LogRecord r, CancellationToken ct)
    {
        var datagram = syslog ? Syslog.Format(r, Options.Facility) : r.Json;
        await _socket!.SendAsync(datagram, SocketFlags.None, ct);
    }

    protected override Task FlushAsync(CancellationToken ct) => Task.CompletedTask;

    protected override ValueTask CloseAsync()
    {
        _socket?.Dispose();
        _socket = null;
        return ValueTask.CompletedTask;
    }
}
