using System.Diagnostics;
using EdgeEru.Dev;

namespace EdgeEru.Ssh.Tests;

/// <summary>The real OpenSSH client (Debian openssh-client) as a subprocess, with its own keys and known_hosts.</summary>
public sealed class OpenSshClient : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-ssh-client-").FullName;
    private readonly string _ssh = Tools.Find("ssh", "openssh-client");
    private readonly string _keygen = Tools.Find("ssh-keygen", "openssh-client");

    public string Dir => _dir;

    /// <summary>Makes a user key of the type (ed25519, ecdsa, rsa) and returns its path; the .pub beside it.</summary>
    public async Task<string> KeyAsync(string type, string name)
    {
        var path = Path.Combine(_dir, name);
        if (!File.Exists(path)) await Shell.RunAsync(_keygen, ["-q", "-t", type, "-N", "", "-C", name, "-f", path]);
        return path;
    }

    public static string PublicKeyLine(string keyPath) => File.ReadAllText(keyPath + ".pub").Trim();

    /// <summary>
    /// Trusts exactly these host keys for 127.0.0.1:port and [::1]:port (StrictHostKeyChecking stays on: the host key
    /// signature is checked).
    /// </summary>
    public void TrustHost(int port, IEnumerable<string> hostKeyLines) =>
        File.WriteAllLines(Path.Combine(_dir, "known_hosts"),
            hostKeyLines.SelectMany(l => (string[])[$"[127.0.0.1]:{port} {l}", $"[::1]:{port} {l}"]));

    public sealed record Result(int ExitCode, byte[] Stdout, string Stderr)
    {
        public string Text => System.Text.Encoding.UTF8.GetString(Stdout);
    }

    /// <summary>Options every OpenSSH tool (ssh, sftp, scp) gets: this key only, batch mode, our known_hosts strictly.</summary>
    private string[] Common(string key) =>
    [
        "-F", "/dev/null", "-i", key,
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=" + Path.Combine(_dir, "known_hosts"), "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
    ];

    public Task<Result> RunAsync(int port, string user, string key, string? command, IEnumerable<string>? options = null,
        byte[]? stdin = null, bool tty = false, TimeSpan? timeout = null, string host = "127.0.0.1")
    {
        List<string> args = [.. Common(key), "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        foreach (var o in options ?? []) args.AddRange(["-o", o]);
        args.Add(tty ? "-tt" : "-T");
        args.Add(user + "@" + host);
        if (command is not null) args.Add(command);
        return RunToolAsync(_ssh, args, stdin, timeout);
    }

    /// <summary>sftp in batch mode (-b -: commands from <paramref name="batch"/>).</summary>
    public Task<Result> SftpAsync(int port, string user, string key, string batch) =>
        RunToolAsync(Tools.Find("sftp", "openssh-client"),
            [.. Common(key), "-P", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-b", "-", user + "@127.0.0.1"],
            System.Text.Encoding.UTF8.GetBytes(batch), null);

    /// <summary>scp (SFTP protocol, OpenSSH's default since 9.0) with sources and target as given (remote: LOGIN@127.0.0.1:PATH).</summary>
    public Task<Result> ScpAsync(int port, string key, params string[] paths) =>
        RunToolAsync(Tools.Find("scp", "openssh-client"),
            [.. Common(key), "-P", port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. paths], null, null);

    private static async Task<Result> RunToolAsync(string tool, IEnumerable<string> args, byte[]? stdin, TimeSpan? timeout)
    {
        var psi = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = new MemoryStream();
        var copyOut = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = p.StandardError.ReadToEndAsync();
        var feed = Task.Run(async () =>
        {
            try
            {
                if (stdin is not null) await p.StandardInput.BaseStream.WriteAsync(stdin);
                p.StandardInput.Close();
            }
            catch (IOException)
            {
                // ssh exited before reading all of it
            }
        });
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Path.GetFileName(tool)} {string.Join(' ', psi.ArgumentList)} did not finish: {await stderr}");
        }
        await copyOut;
        await feed;
        return new Result(p.ExitCode, stdout.ToArray(), await stderr);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
