using System.Net;

namespace EdgeEru.Mimiron;

/// <summary>The "Ssh" configuration section.</summary>
public sealed class GatewayOptions
{
    public const string Section = "Ssh";

    /// <summary>
    /// The addresses SSH listens on, comma-separated, either family ("127.0.0.1,::1": loopback in both); "::" alone
    /// listens on both families everywhere (one dual-stack socket).
    /// </summary>
    public string Listen { get; set; } = "127.0.0.1";

    /// <summary><see cref="Listen"/> parsed (after <see cref="Problems"/> found none).</summary>
    public IReadOnlyList<IPAddress> ListenAddresses() => [.. ListenParts().Select(IPAddress.Parse)];

    private string[] ListenParts() => Listen.Split(',', StringSplitOptions.TrimEntries);
    public int Port { get; set; } = 2222;

    /// <summary>Where host keys are kept (generated on first start). Empty: ~/.local/share/eru-ssh/host-keys.</summary>
    public string HostKeyDirectory { get; set; } = "";

    /// <summary>File the audit JSON lines are appended to. Empty: the log (category EdgeEru.Mimiron.Audit).</summary>
    public string AuditLog { get; set; } = "";

    /// <summary>A session with no input or output for this long ends (0: never).</summary>
    public int IdleTimeoutSeconds { get; set; }

    /// <summary>A session ends after this long (0: no limit).</summary>
    public int MaxSessionSeconds { get; set; }

    public int MaxSessionsPerUser { get; set; } = 20;

    /// <summary>Where session recordings (asciicast v2, one file per session) go. Empty: no recordings.</summary>
    public string RecordDirectory { get; set; } = "";

    /// <summary>
    /// Certificate authorities (public keys as authorized_keys lines) whose user certificates log in without the key being
    /// listed: the certificate's principals must include the user, who must still exist in the registry (for app access).
    /// </summary>
    public List<string> UserCaKeys { get; set; } = [];

    public string ResolvedHostKeyDirectory => HostKeyDirectory.Length > 0
        ? HostKeyDirectory
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "eru-ssh", "host-keys");

    public List<string> Problems()
    {
        var p = new List<string>();
        foreach (var part in ListenParts())
            if (!IPAddress.TryParse(part, out _)) p.Add($"Ssh:Listen \"{part}\" is not an IP address");
        if (Port is < 0 or > 65535) p.Add($"Ssh:Port {Port} is outside 0-65535");
        if (IdleTimeoutSeconds < 0) p.Add("Ssh:IdleTimeoutSeconds must not be negative");
        if (MaxSessionSeconds < 0) p.Add("Ssh:MaxSessionSeconds must not be negative");
        if (MaxSessionsPerUser < 1) p.Add("Ssh:MaxSessionsPerUser must be at least 1");
        for (var i = 0; i < UserCaKeys.Count; i++)
        {
            try
            {
                EdgeEru.Ssh.Keys.SshPublicKey.ParseAuthorizedKey(UserCaKeys[i]);
            }
            catch (FormatException e)
            {
                p.Add($"Ssh:UserCaKeys:{i}: {e.Message}");
            }
        }
        return p;
    }
}
