using System.Text;

namespace EdgeEru.Core.Deploy;

/// <summary>Splits a command written as one string (app specs, hooks) into arguments, the way a POSIX shell quotes.</summary>
public static class CommandLine
{
    /// <summary>
    /// Words split on unquoted whitespace; '…' keeps everything literally, "…" and a backslash escape the
    /// next character. No expansion: the result is run with exec, not by a shell.
    /// </summary>
    public static IReadOnlyList<string> Split(string command)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < command.Length; i++)
        {
            var c = command[i];
            switch (c)
            {
                case '\'':
                    inWord = true;
                    var end = command.IndexOf('\'', i + 1);
                    if (end < 0) throw new FormatException($"unclosed ' in: {command}");
                    word.Append(command, i + 1, end - i - 1);
                    i = end;
                    break;
                case '"':
                    inWord = true;
                    for (i++; ; i++)
                    {
                        if (i >= command.Length) throw new FormatException($"unclosed \" in: {command}");
                        if (command[i] == '"') break;
                        if (command[i] == '\\' && i + 1 < command.Length && command[i + 1] is '"' or '\\' or '$' or '`') i++;
                        word.Append(command[i]);
                    }
                    break;
                case '\\' when i + 1 < command.Length:
                    inWord = true;
                    word.Append(command[++i]);
                    break;
                case ' ' or '\t' or '\n' or '\r':
                    if (inWord) words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                    break;
                default:
                    inWord = true;
                    word.Append(c);
                    break;
            }
        }
        if (inWord) words.Add(word.ToString());
        return words;
    }
}
