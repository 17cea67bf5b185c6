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

    /// <summary>Trusts exactly these host keys for 127.0.0.1:port (StrictHostKeyChecking stays on: the host key signature is checked).</summary>
    public void TrustHost(int port, IEnumerable<string> hostKeyLines) =>
        File.WriteAllLines(Path.Combine(_dir, "known_hosts"), hostKeyLines.Select(l => $"[127.0.0.1]:{port} {l}"));

    public sealed record Result(int ExitCode, byte[] Stdout, string Stderr)
    {
        public string Text => System.Text.Encoding.UTF8.GetString(Stdout);
    }

    public async Task<Result> RunAsync(int port, string user, string key, string? command, IEnumerable<string>? options = null, byte[]? stdin = null,
        bool tty = false, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(_ssh)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        string[] args =
        [
            "-F", "/dev/null", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", key,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + Path.Combine(_dir, "known_hosts"), "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
        ];
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var o in options ?? []) { psi.ArgumentList.Add("-o"); psi.ArgumentList.Add(o); }
        psi.ArgumentList.Add(tty ? "-tt" : "-T");
        psi.ArgumentList.Add(user + "@127.0.0.1");
        if (command is not null) psi.ArgumentList.Add(command);
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
            throw new TimeoutException($"ssh {command} did not finish: {await stderr}");
        }
        await copyOut;
        await feed;
        return new Result(p.ExitCode, stdout.ToArray(), await stderr);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
