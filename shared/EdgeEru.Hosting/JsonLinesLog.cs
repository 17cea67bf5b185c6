using System.Text;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Hosting;

/// <summary>
/// An audit trail: one JSON line per event appended to a file (flushed per line, so a crash loses none that was
/// written; readable while written) or, without a path, written to the log. Both Core's audit log of changing
/// calls and the SSH gateway's of logins and sessions are one.
/// </summary>
public sealed class JsonLinesLog : IDisposable
{
    private readonly StreamWriter? _file;
    private readonly ILogger _log;
    private readonly Lock _lock = new();

    /// <param name="path">The file; null or blank: the log.</param>
    /// <param name="setting">The setting that named it, for the error when it cannot be opened.</param>
    public JsonLinesLog(string? path, string setting, ILogger log)
    {
        _log = log;
        if (string.IsNullOrWhiteSpace(path)) return;
        try
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            _file = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{setting}: cannot open {path}: {ex.Message}", ex);
        }
    }

    public void Write(string line)
    {
        if (_file is null)
        {
            _log.LogInformation("{Audit}", line);
            return;
        }
        lock (_lock)
        {
            _file.WriteLine(line);
            _file.Flush();
        }
    }

    public void Dispose() => _file?.Dispose();
}
