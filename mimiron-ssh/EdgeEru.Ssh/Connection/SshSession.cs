using System.Collections.Immutable;
using System.Threading.Channels;
using EdgeEru.Ssh.Server;

namespace EdgeEru.Ssh.Connection;

/// <summary>A terminal size in characters and pixels (RFC 4254 §6.2, §6.7).</summary>
public readonly record struct TerminalSize(uint Columns, uint Rows, uint WidthPixels, uint HeightPixels);

/// <summary>A pty-req: terminal type, size and encoded terminal modes.</summary>
public sealed record PtyRequest(string Term, TerminalSize Size, byte[] Modes);

/// <summary>
/// One session channel once it asked for a shell, a command or a subsystem: what it asked, its input (ends at the
/// client's EOF), its output and error streams (flow-controlled by the client's window), resizes and signals.
/// </summary>
public sealed class SshSession
{
    internal SshSession(SshConnectionInfo connection, PtyRequest? pty, ImmutableDictionary<string, string> environment,
        string? command, string? subsystem, Stream input, Stream output, Stream error, ChannelReader<TerminalSize> resizes,
        ChannelReader<string> signals)
    {
        Connection = connection;
        Pty = pty;
        Environment = environment;
        Command = command;
        Subsystem = subsystem;
        Input = input;
        Output = output;
        Error = error;
        Resizes = resizes;
        Signals = signals;
    }

    public SshConnectionInfo Connection { get; }
    public PtyRequest? Pty { get; }
    public ImmutableDictionary<string, string> Environment { get; }

    /// <summary>The exec command, or null for a shell or subsystem.</summary>
    public string? Command { get; }
    public string? Subsystem { get; }
    public bool IsShell => Command is null && Subsystem is null;

    public Stream Input { get; }
    public Stream Output { get; }
    /// <summary>Extended data of type stderr (a pty session merges it in the terminal, but the channel still carries it).</summary>
    public Stream Error { get; }

    /// <summary>window-change requests, latest last.</summary>
    public ChannelReader<TerminalSize> Resizes { get; }

    /// <summary>signal requests (names without SIG, e.g. INT).</summary>
    public ChannelReader<string> Signals { get; }
}
