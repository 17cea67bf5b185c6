using EdgeEru.Core.Deploy;
using EdgeEru.Core.Server.WebConsole;
using EdgeEru.Docker;
using EdgeEru.Core.Secrets;
using EdgeEru.Hosting;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Tls;
using EdgeEru.Registry.Watch;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace EdgeEru.Core.Server;

/// <summary>eru-core's host, built the same way for the binary and for tests.</summary>
public static class CoreHost
{
    public static WebApplication Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        var builder = ServiceHost.CreateBuilder(args, logging);

        // gRPC on Core:Urls (HTTP/2 without TLS: h2c; https:// URLs with Core:Tls:CertPath and KeyPath, PEM);
        // /metrics and /healthz on Http:Urls (HTTP/1.1).
        var apiUrls = Urls(builder.Configuration["Core:Urls"] ?? "http://127.0.0.1:5001", "Core:Urls");
        // The console (HTTP/1.1: browsers do not speak h2c) on Core:ConsoleUrls, when set; https with the API's certificate.
        var consoleUrls = builder.Configuration["Core:ConsoleUrls"] is { Length: > 0 } cu ? Urls(cu, "Core:ConsoleUrls") : new List<Uri>();
        var httpsIn = apiUrls.Any(u => u.Scheme == "https") ? "Core:Urls"
            : consoleUrls.Any(u => u.Scheme == "https") ? "Core:ConsoleUrls" : null;
        var certificate = httpsIn is not null
            ? Certificate(builder.Configuration["Core:Tls:CertPath"], builder.Configuration["Core:Tls:KeyPath"], httpsIn)
            : null;
        var opsUrls = Urls(builder.OpsUrls("http://127.0.0.1:9182"), ServiceHost.OpsUrlsKey);
        var configuredToken = builder.Configuration["Core:Token"];
        var token = string.IsNullOrWhiteSpace(configuredToken)
            ? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))
            : configuredToken.Trim();
        builder.WebHost.ConfigureKestrel(k =>
        {
            foreach (var u in apiUrls)
                k.Listen(Endpoint(u), o =>
                {
                    o.Protocols = HttpProtocols.Http2;
                    if (u.Scheme == "https") o.UseHttps(certificate!);
                });
            foreach (var u in opsUrls) k.Listen(Endpoint(u), o => o.Protocols = HttpProtocols.Http1);
            foreach (var u in consoleUrls)
                k.Listen(Endpoint(u), o =>
                {
                    o.Protocols = HttpProtocols.Http1;
                    if (u.Scheme == "https") o.UseHttps(certificate!);
                });
        });
        var opsPorts = opsUrls.Select(u => u.Port).ToHashSet();
        var consolePorts = consoleUrls.Select(u => u.Port).ToHashSet();

        builder.Services.AddRegistryStore(builder.Configuration);
        builder.Services.AddRegistryWatcher(builder.Configuration);
        // Secrets and registry credentials are sealed with Core's key; without one, specs that use them are refused.
        var keyFile = builder.Configuration["Core:SecretsKeyFile"];
        SecretBox? box = null;
        if (!string.IsNullOrWhiteSpace(keyFile))
        {
            try
            {
                box = SecretBox.FromFile(keyFile);
            }
            catch (IOException ex)
            {
                throw new ArgumentException($"Core:SecretsKeyFile: cannot read {keyFile}: {ex.Message}", ex);
            }
        }
        var bindRoots = (builder.Configuration["Core:BindRoots"] ?? "")
            .Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var root in bindRoots)
            if (!root.StartsWith('/') || root.Split('/').Contains("..") || root == "/")
                throw new ArgumentException($"Core:BindRoots: \"{root}\" must be an absolute host path other than /, without '..'");
        builder.Services.AddSingleton(sp => new SecretStore(sp.GetRequiredService<RegistryStore>(), box));
        // This replica: in cores/{id} under a lease, and the author of the intents its operations write.
        var replica = new CoreIdentity(builder.Configuration["Core:ReplicaId"] is { Length: > 0 } rid ? rid : Convert.ToHexStringLower(
            System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)),
            [.. (builder.Configuration["Core:AdvertiseUrls"] is { Length: > 0 } advertised
            ? Urls(advertised, "Core:AdvertiseUrls") : apiUrls).Select(u => u.ToString().TrimEnd('/'))]);
        builder.Services.AddSingleton(replica);
        var crashAt = FaultInjection.CrashAt(builder.Configuration["Core:FaultInjection:CrashAt"]);
        builder.Services.AddSingleton(sp => new Deployer(sp.GetRequiredService<RegistryStore>(), e => new DockerEngine(e),
            sp.GetRequiredService<ILogger<Deployer>>(), sp.GetRequiredService<RegistryWatcher>())
        {
            Secrets = sp.GetRequiredService<SecretStore>(),
            Options = new DeployerOptions { BindRoots = [.. bindRoots.Select(r => r.TrimEnd('/'))] },
            Intents = new IntentLog(sp.GetRequiredService<RegistryStore>(), replica.Id),
            Interleave = crashAt,
        });
        var pools = IpPoolService.FromConfiguration(builder.Configuration); // a wrong pool stops the start here
        builder.Services.AddHostedService(sp => new IpPoolService(sp.GetRequiredService<Deployer>(), pools,
            sp.GetRequiredService<ILogger<IpPoolService>>()));
        builder.Services.AddHostedService<ReplicaService>();
        builder.Services.AddSingleton(new BearerToken(token));
        builder.Services.AddSingleton(sp => new TokenStore(sp.GetRequiredService<RegistryStore>()));
        var auditLog = builder.Configuration["Core:AuditLog"];
        builder.Services.AddSingleton(sp => new AuditLog(auditLog, sp.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddSingleton(new AgentAccess(builder.Configuration["Core:AgentToken"]));
        builder.Services.AddSingleton(sp => new SnapshotHistory(sp.GetRequiredService<RegistryWatcher>()));
        builder.Services.AddSingleton(new ConsoleSources(auditLog is { Length: > 0 } ? auditLog : null,
            builder.Configuration["Core:SshAuditLog"] is { Length: > 0 } sshAudit ? sshAudit : null,
            builder.Configuration["Core:DnsZone"] is { Length: > 0 } zone ? zone : "eru"));
        builder.Services.AddGrpc(o =>
        {
            o.Interceptors.Add<AuthInterceptor>();
            o.MaxReceiveMessageSize = 4 << 20;
        });

        var app = builder.Build();
        app.Services.GetRequiredService<AuditLog>(); // a path that cannot be written stops the start, not the first call
        app.Services.GetRequiredService<SnapshotHistory>(); // kept from the start, so that watches can resume
        app.MapOpsOnPorts(opsPorts, (RegistryWatcher watcher) => Results.Json(new
        {
            status = watcher.Ready.IsCompleted && watcher.InTouch ? "serving"
                : watcher.Ready.IsCompleted ? "registry out of touch"
                : "starting",
            revision = watcher.Current.Revision,
            registry_in_touch = watcher.InTouch,
        }, statusCode: watcher.Ready.IsCompleted && watcher.InTouch ? 200 : 503));
        if (consolePorts.Count > 0) ConsolePage.MapOnPorts(app, consolePorts);
        app.MapGrpcService<CoreService>();
        if (box is null) app.Logger.LogWarning("no Core:SecretsKeyFile configured: secrets and registry credentials are off");
        if (string.IsNullOrWhiteSpace(configuredToken))
            app.Logger.LogWarning("no Core:Token configured; the API on {Urls} takes this one for this run: {Token}",
                string.Join(";", apiUrls), token);
        return app;
    }

    /// <summary>The API's certificate (PEM certificate chain and key); an https URL without one is refused at start.</summary>
    private static System.Security.Cryptography.X509Certificates.X509Certificate2 Certificate(
        string? certPath, string? keyPath, string setting)
    {
        if (string.IsNullOrWhiteSpace(certPath) || string.IsNullOrWhiteSpace(keyPath))
            throw new ArgumentException($"{setting} has an https:// URL: set Core:Tls:CertPath and Core:Tls:KeyPath (PEM files)");
        try
        {
            return PemTls.LoadCertificate(certPath, keyPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new ArgumentException($"Core:Tls: cannot load {certPath} with key {keyPath}: {ex.Message}", ex);
        }
    }

    private static List<Uri> Urls(string value, string setting)
    {
        var list = new List<Uri>();
        foreach (var part in value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https") || u.Port <= 0)
                throw new ArgumentException($"{setting}: \"{part}\" is not an http://host:port URL");
            list.Add(u);
        }
        if (list.Count == 0) throw new ArgumentException($"{setting} is empty");
        return list;
    }

    private static System.Net.IPEndPoint Endpoint(Uri u) =>
        new(u.Host is "localhost" ? System.Net.IPAddress.Loopback : System.Net.IPAddress.Parse(u.Host), u.Port);
}
